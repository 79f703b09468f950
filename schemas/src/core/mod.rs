//! The core/v1 API group: Pod, Node, Service, Endpoints, ConfigMap, Secret,
//! Namespace and Event, and the types they are built from.

pub mod config;
pub mod container;
pub mod event;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod scheduling;
pub mod service;
pub mod volume;

pub use config::{ConfigMap, Secret};
pub use container::*;
pub use event::{Event, EventSeries, EventSource};
pub use namespace::{Namespace, NamespaceCondition, NamespaceSpec, NamespaceStatus};
pub use node::*;
pub use pod::*;
pub use scheduling::*;
pub use service::*;
pub use volume::*;
