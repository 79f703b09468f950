//! Reconcilers: the controller runtime (API client, watcher, reflector cache,
//! work queue, controller loop, leader election) and the controllers built on
//! it (deployment, replicaset, scheduler, node-health, endpoints, namespace,
//! garbage collector), one module each.
