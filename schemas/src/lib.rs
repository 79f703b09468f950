//! korral's resource model: the Kubernetes-compatible types of every served
//! kind, their defaulting, their JSON Schemas, and the decoding and
//! validation of manifests with file:line errors.
//!
//! Start reading at [`kinds`] (the table of served kinds), then [`decode`]
//! (files to objects) and [`check`] (objects to verdicts).

pub mod apps;
pub mod check;
pub mod coordination;
pub mod core;
pub mod decode;
pub mod defaults;
pub mod diagnostic;
pub mod duration;
pub mod field_error;
pub mod intstr;
pub mod kinds;
pub mod korral;
pub mod located;
pub mod meta;
pub mod path;
pub mod quantity;
pub mod resource;
pub mod schema;
pub mod time;
pub mod validation;

pub use check::{Checked, Valid, check_all, check_manifest, validate_object};
pub use decode::{Decoded, Manifest, decode_file};
pub use diagnostic::{Class, Diagnostic};
pub use field_error::{FieldError, Reason};
pub use intstr::IntOrString;
pub use kinds::{KindInfo, lookup, served};
pub use meta::{LabelSelector, ObjectMeta, OwnerReference};
pub use path::FieldPath;
pub use quantity::Quantity;
pub use resource::Resource;
pub use time::{MicroTime, Time};
