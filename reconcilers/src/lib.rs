//! Reconcilers: the controller runtime ([`runtime`]: API client, watcher,
//! reflector cache, work queue, controller loop, leader election) and the
//! [`controllers`] built on it, one module each; [`dns`] is the cluster DNS
//! server the control plane runs.

pub mod controllers;
pub mod dns;
pub mod runtime;
