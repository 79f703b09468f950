//! Pod convergence: the reconciler that makes the runtime run what the pods
//! bound to this node ask for, and the pieces it uses — env, volumes,
//! downward API, probes, image pulls and image garbage collection,
//! crash-loop back-off, status, resolv.conf.

pub mod backoff;
pub mod dns;
pub mod downward;
pub mod env;
pub mod image_gc;
pub mod images;
pub mod probes;
pub mod service_env;
pub mod sources;
pub mod status;
pub mod sync;
pub mod tokens;
pub mod volumes;

pub use sync::{PodContext, reconcile};
