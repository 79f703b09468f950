//! The controller runtime every controller and the node daemon use, talking
//! only to the API server: client, watcher, cache, informer, work queue,
//! controller loop, leader election and metrics.

pub mod backoff;
pub mod cache;
pub mod client;
pub mod controller;
pub mod informer;
pub mod kubeconfig;
pub mod leader;
pub mod metrics;
pub mod queue;
pub mod watcher;

pub use cache::{Cache, ObjectRef};
pub use client::{
    Api, Client, ClientError, DeleteParams, ListParams, Patch, WatchEvent, WriteParams,
};
pub use controller::{Action, Controller};
pub use informer::{Change, Informer};
pub use leader::{LeaderElector, Timing};
pub use metrics::ControllerMetrics;
pub use queue::Queue;
