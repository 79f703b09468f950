//! The node daemon: registers its Node, heartbeats a Lease, converges the pods
//! bound to it through a [`runtime::Runtime`] (containerd, process,
//! simulated), runs probes, reports status, and serves container logs to the
//! API server over HTTPS.
//!
//! Start reading at [`daemon`] (the wiring), then [`pods::sync`] (the pod
//! reconciler) and [`runtime`] (the trait and its implementations). The
//! service proxy is [`proxy`]; the service load balancer (LoadBalancer
//! Services and userspace NodePorts on the host) is [`servicelb`]; routes to other nodes' pods are [`routes`];
//! persistent volumes (claims mounted, local-path volumes reclaimed) are [`storage`];
//! the usage figures the Metrics API reads are [`stats`]; joining a cluster
//! by token (TLS bootstrapping and certificate rotation) is [`tls_bootstrap`].

pub mod config;
pub mod daemon;
pub mod ingress;
pub mod lease;
pub mod machine;
pub mod pods;
pub mod proxy;
pub mod registration;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod servicelb;
pub mod stats;
pub mod storage;
pub mod tls_bootstrap;

pub use config::{NodeConfig, Timings};
pub use daemon::Daemon;
