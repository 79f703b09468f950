//! The scheduler, as kube-scheduler: a queue of unscheduled pods, a cache of
//! nodes and what is placed on them (assumed pods included), a framework of
//! filter and score plugins, and binding through `pods/binding`.
//!
//! - `pod_info.rs`, `resources.rs` — what the scheduler derives from a pod or node;
//! - `cache.rs` — nodes with their pods, requests, ports, images;
//! - `queue.rs` — active / backoff / unschedulable pods and the events that move them;
//! - `framework.rs` — plugin points, one scheduling cycle, the failure message;
//! - `plugins/` — one file per plugin, and the default profile;
//! - `core.rs` — all of the above without I/O (used by the benchmark);
//! - `run.rs` — the controller: informers in, bindings, status and events out.

pub mod cache;
pub mod core;
pub mod framework;
pub mod plugins;
pub mod pod_info;
pub mod queue;
pub mod resources;
mod run;

pub use self::core::{Outcome, Scheduler};
pub use run::run;
