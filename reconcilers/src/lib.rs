//! Reconcilers: the controller runtime ([`runtime`]: API client, watcher,
//! reflector cache, work queue, controller loop, leader election) and the
//! [`controllers`] built on it, one module each.

pub mod controllers;
pub mod runtime;
