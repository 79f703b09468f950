//! The `Resource` trait every served kind implements: its group, version,
//! kind, plural and scope, and access to its metadata.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::meta::ObjectMeta;

/// A kind the API serves, with its identity and metadata.
pub trait Resource:
    Serialize + DeserializeOwned + JsonSchema + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// API group, "" for core.
    const GROUP: &'static str;
    /// API version within the group.
    const VERSION: &'static str;
    /// Kind, e.g. `Pod`.
    const KIND: &'static str;
    /// Resource name in URLs, e.g. `pods`.
    const PLURAL: &'static str;
    /// Whether objects live in a namespace.
    const NAMESPACED: bool;
    /// `group/version`, or just `version` for the core group.
    const API_VERSION: &'static str;

    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta;
    /// The object's metadata, mutably.
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    /// Sets `apiVersion` and `kind` to this kind's.
    fn set_type_meta(&mut self);
}

/// Implements [`Resource`] for a struct with `api_version`, `kind` and `metadata` fields.
macro_rules! impl_resource {
    ($ty:ident, group: $group:literal, version: $version:literal, plural: $plural:literal, namespaced: $ns:literal) => {
        impl $crate::resource::Resource for $ty {
            const GROUP: &'static str = $group;
            const VERSION: &'static str = $version;
            const KIND: &'static str = stringify!($ty);
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $ns;
            const API_VERSION: &'static str = if $group.is_empty() {
                $version
            } else {
                concat!($group, "/", $version)
            };

            fn metadata(&self) -> &$crate::meta::ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut $crate::meta::ObjectMeta {
                &mut self.metadata
            }

            fn set_type_meta(&mut self) {
                self.api_version =
                    Some(<Self as $crate::resource::Resource>::API_VERSION.to_string());
                self.kind = Some(stringify!($ty).to_string());
            }
        }
    };
}

pub(crate) use impl_resource;
