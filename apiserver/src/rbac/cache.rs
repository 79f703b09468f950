//! The RBAC [`Snapshot`] of the moment: built from every Role, ClusterRole
//! and binding and rebuilt after each change (see [`crate::watched`]).

use serde_json::Value;

use super::Snapshot;
use crate::watched::{Watched, decode_all};

/// The kinds the snapshot is built from, in [`build`]'s order.
const KINDS: &[(&str, &str)] = &[
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
];

/// The current RBAC snapshot, shared by every request.
pub type RbacCache = Watched<Snapshot>;

fn build(lists: Vec<Vec<Value>>) -> Snapshot {
    let mut lists = lists.into_iter();
    let mut next = || lists.next().unwrap_or_default();
    Snapshot::new(
        decode_all(next()),
        decode_all(next()),
        decode_all(next()),
        decode_all(next()),
    )
}

/// An RBAC cache, empty until started.
pub fn new() -> RbacCache {
    Watched::new(KINDS, build)
}
