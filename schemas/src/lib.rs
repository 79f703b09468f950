//! korral's resource model: the served kinds (built-in kinds on
//! k8s-openapi's types, korral's own, and custom kinds from
//! CustomResourceDefinitions), their defaulting, their JSON Schemas, and the
//! decoding and validation of manifests with file:line errors.
//!
//! Start reading at [`kinds`] (served kinds as data, and the registry that
//! holds them), then [`decode`] (files to objects) and [`check`] (objects to
//! verdicts).

pub mod check;
pub mod conversion;
pub mod crd;
pub mod cron;
pub mod decode;
pub mod defaults;
pub mod diagnostic;
pub mod duration;
pub mod field_error;
pub mod frames;
pub mod kinds;
pub mod korral;
pub mod kubelet_stats;
pub mod located;
pub mod object;
pub mod path;
pub mod quantity;
pub mod resource_metrics;
pub mod schema;
pub mod time;
pub mod validation;

pub use check::{Checked, Valid, check_all, check_manifest, validate_object};
pub use decode::{Decoded, Manifest, decode_file};
pub use diagnostic::{Class, Diagnostic};
pub use field_error::{FieldError, Reason};
pub use kinds::{KindInfo, Registry, builtin_kinds, lookup};
pub use object::{MetaExt, Object, SelectorExt};
pub use path::FieldPath;
pub use quantity::QuantityExt;
pub use time::TimeExt;

/// Kubernetes' types (k8s-openapi), re-exported so every crate uses the same version.
pub use k8s_openapi;
