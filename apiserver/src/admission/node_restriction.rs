//! NodeRestriction on creates, as kube-apiserver's plugin: a node (a
//! `system:node:NAME` client certificate, e.g. one a joining node got by
//! TLS bootstrapping) may create only its own Node and its own Lease in
//! `kube-node-lease` — the authoriser cannot tell, as a create's URL names
//! no object.

use serde_json::Value;

use schemas::KindInfo;

use crate::auth::{Identity, Role};
use crate::errors::{ApiError, ApiResult};

/// Refuses a node's create of another node's Node or Lease.
pub fn admit_create(info: &KindInfo, id: &Identity, obj: &Value) -> ApiResult<()> {
    let Role::Node(node) = &id.role else {
        return Ok(());
    };
    let name = crate::objects::name(obj);
    if info.is("", "Node") && name != node {
        return Err(ApiError::forbidden_message(format!(
            "nodes {name:?} is forbidden: node {node:?} is not allowed to modify node {name:?}"
        )));
    }
    if info.is("coordination.k8s.io", "Lease") && name != node {
        return Err(ApiError::forbidden_message(format!(
            "leases.coordination.k8s.io {name:?} is forbidden: can only access node lease with the same name as the requesting node"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_creates_only_its_own_node_and_lease() {
        let node = schemas::lookup("v1", "Node").expect("kind");
        let lease = schemas::lookup("coordination.k8s.io/v1", "Lease").expect("kind");
        let a = Identity {
            name: "system:node:a".into(),
            role: Role::Node("a".into()),
        };
        let named = |n: &str| serde_json::json!({"metadata": {"name": n}});
        assert!(admit_create(node, &a, &named("a")).is_ok());
        assert!(admit_create(lease, &a, &named("a")).is_ok());
        let e = admit_create(node, &a, &named("b")).expect_err("other node");
        assert_eq!(e.code, 403);
        assert!(
            e.message.contains("not allowed to modify node \"b\""),
            "{}",
            e.message
        );
        assert!(admit_create(lease, &a, &named("b")).is_err());
        let admin = Identity {
            name: "root".into(),
            role: Role::Admin,
        };
        assert!(admit_create(node, &admin, &named("b")).is_ok());
    }
}
