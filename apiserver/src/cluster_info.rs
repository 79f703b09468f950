//! The `kube-public/cluster-info` ConfigMap, as kubeadm publishes it: a
//! kubeconfig naming the API server and the cluster CA, readable without
//! credentials (Role and RoleBinding `kubeadm:bootstrap-signer-clusterinfo`
//! for `system:anonymous`). A joining node reads it over an unverified
//! connection and trusts the CA only if its hash matches the one in the join
//! token; kubelet TLS bootstrapping (`korral node --server --token`) starts
//! here.

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::registry::{Registry, WriteOptions};

/// The ConfigMap's namespace.
pub const NAMESPACE: &str = "kube-public";
/// The ConfigMap's name.
pub const NAME: &str = "cluster-info";
/// The key holding the kubeconfig.
pub const KEY: &str = "kubeconfig";
/// The Role and RoleBinding letting anonymous users read it (kubeadm's names).
pub const ROLE: &str = "kubeadm:bootstrap-signer-clusterinfo";

/// The kubeconfig kubeadm writes into `cluster-info`: one cluster, no user.
pub fn kubeconfig(server: &str, ca_pem: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
    )
}

/// Creates (or refreshes) the ConfigMap and the Role and RoleBinding that make
/// it readable by `system:anonymous`.
pub async fn publish(registry: &Registry, server: &str, ca_pem: &str) -> Result<(), ApiError> {
    let lookup = |v, k| schemas::lookup(v, k).map_err(|e| ApiError::internal(e.to_string()));
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "data": {KEY: kubeconfig(server, ca_pem)}});
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": ROLE, "namespace": NAMESPACE},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [NAME], "verbs": ["get"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": ROLE, "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]});
    for (info, obj, refreshed) in [
        (lookup("v1", "ConfigMap")?, cm, Some("/data")),
        (lookup("rbac.authorization.k8s.io/v1", "Role")?, role, None),
        (
            lookup("rbac.authorization.k8s.io/v1", "RoleBinding")?,
            binding,
            None,
        ),
    ] {
        let opts = WriteOptions::default();
        match registry
            .create(info, Some(NAMESPACE), obj.clone(), &opts, |_| Ok(()))
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 409 => {
                let Some(field) = refreshed else { continue };
                // a server restarted at another address or with a new CA
                let refresh = |old: &Value| {
                    let mut new = old.clone();
                    if let (Some(slot), Some(v)) = (new.pointer_mut(field), obj.pointer(field)) {
                        *slot = v.clone();
                    }
                    Ok(new)
                };
                registry
                    .update_with(
                        info,
                        Some(NAMESPACE),
                        NAME,
                        None,
                        &opts,
                        None,
                        refresh,
                        |_, _| Ok(()),
                    )
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_carries_the_server_and_the_ca() {
        let text = kubeconfig("https://10.0.0.1:6443", "PEM");
        assert!(text.contains("server: https://10.0.0.1:6443\n"));
        assert!(text.contains("certificate-authority-data: UEVN\n"));
    }
}
