//! The ServiceAccount admission plugin (kube-apiserver's
//! `plugin/pkg/admission/serviceaccount`): a new pod runs as `default`
//! unless it names a ServiceAccount, which must exist; unless automounting
//! is off (the pod's `automountServiceAccountToken`, else the
//! ServiceAccount's), every container gets the `kube-api-access-XXXXX`
//! projected volume — a bound token, the cluster CA (`kube-root-ca.crt`)
//! and the namespace — at `/var/run/secrets/kubernetes.io/serviceaccount`;
//! a pod without `imagePullSecrets` gets the ServiceAccount's.
//!
//! One difference: a missing `default` ServiceAccount does not refuse the
//! pod (kube-apiserver refuses it until kube-controller-manager made it);
//! korral's API server may run without the controllers, and the node keeps
//! asking for the token until the account exists.

use serde_json::{Map, Value, json};

use crate::errors::{ApiError, ApiResult};
use crate::registry::Registry;

/// Where every container finds its ServiceAccount's token, CA and namespace.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The projected volume's name prefix.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The token lifetime the volume asks for (kube's `warnOnlyBoundTokenExpirationSeconds`).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The ConfigMap with the cluster CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The ServiceAccount a pod runs as unless it names one.
pub const DEFAULT_ACCOUNT: &str = "default";

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Admits a new pod: its ServiceAccount, token volume and pull secrets.
pub async fn admit_pod(registry: &Registry, pod: &mut Value) -> ApiResult<()> {
    if pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            MIRROR_ANNOTATION.replace('/', "~1")
        ))
        .is_some()
    {
        return Ok(());
    }
    let ns = crate::objects::namespace(pod)
        .unwrap_or("default")
        .to_string();
    let pod_name = crate::objects::name(pod).to_string();
    let account = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_ACCOUNT)
        .to_string();
    let info = registry
        .kinds()
        .lookup("v1", "ServiceAccount")
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let sa = match registry.get_cached(&info, Some(&ns), &account).await {
        Ok(sa) => Some(sa),
        Err(e) if e.code == 404 && account == DEFAULT_ACCOUNT => None,
        Err(e) if e.code == 404 => {
            return Err(ApiError::forbidden_message(format!(
                "pods {pod_name:?} is forbidden: error looking up service account {ns}/{account}: serviceaccount {account:?} not found"
            )));
        }
        Err(e) => return Err(e),
    };
    let Some(Value::Object(spec)) = pod.get_mut("spec") else {
        return Ok(());
    };
    spec.insert("serviceAccountName".into(), json!(account));
    // the deprecated alias reads the same
    spec.insert("serviceAccount".into(), json!(account));
    if automount(spec, sa.as_ref()) {
        mount_token(spec);
    }
    let has_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_pull_secrets
        && let Some(secrets) = sa
            .as_ref()
            .and_then(|s| s.get("imagePullSecrets"))
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
    {
        spec.insert("imagePullSecrets".into(), Value::Array(secrets.clone()));
    }
    Ok(())
}

/// The pod's choice, else the ServiceAccount's, else yes.
fn automount(spec: &Map<String, Value>, sa: Option<&Value>) -> bool {
    spec.get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.and_then(|s| s.get("automountServiceAccountToken"))
                .and_then(Value::as_bool)
        })
        .unwrap_or(true)
}

/// Mounts the token volume in every (init) container without a mount at
/// [`MOUNT_PATH`]; adds the volume if one needs it and it is not there.
fn mount_token(spec: &mut Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_string);
    let name = existing.clone().unwrap_or_else(volume_name);
    let mount = json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut needed = false;
    for field in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(field) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Value::Array(mounts) = mounts else {
                continue;
            };
            let taken = mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH));
            if !taken {
                mounts.push(mount.clone());
                needed = true;
            }
        }
    }
    if existing.is_none() && needed {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Value::Array(v) = volumes {
            v.push(token_volume(&name));
        }
    }
}

/// `kube-api-access-` and a random 5-character suffix.
fn volume_name() -> String {
    format!("{VOLUME_PREFIX}{}", crate::objects::random_suffix(5))
}

/// The projected volume kube-apiserver adds, field for field.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn every_container_mounts_one_volume() {
        let mut s = spec(json!({
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}],
        }));
        mount_token(&mut s);
        let volumes = s["volumes"].as_array().cloned().unwrap_or_default();
        assert_eq!(volumes.len(), 1, "{volumes:?}");
        let name = volumes[0]["name"].as_str().unwrap_or_default().to_string();
        assert!(name.starts_with(VOLUME_PREFIX) && name.len() == VOLUME_PREFIX.len() + 5);
        assert_eq!(
            s["initContainers"][0]["volumeMounts"][0]["name"],
            json!(name)
        );
        assert_eq!(
            s["containers"][0]["volumeMounts"][0]["mountPath"],
            json!(MOUNT_PATH)
        );
        assert_eq!(
            s["containers"][0]["volumeMounts"][0]["readOnly"],
            json!(true)
        );
        // the container with its own mount there keeps only that one
        assert_eq!(
            s["containers"][1]["volumeMounts"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(s["containers"][1]["volumeMounts"][0]["name"], json!("own"));
    }

    #[test]
    fn no_volume_when_every_container_has_its_own_mount() {
        let mut s = spec(json!({
            "containers": [{"name": "a", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}],
        }));
        mount_token(&mut s);
        assert!(s.get("volumes").is_none());
    }

    #[test]
    fn an_existing_token_volume_is_reused() {
        let mut s = spec(json!({
            "volumes": [token_volume("kube-api-access-abcde")],
            "containers": [{"name": "a"}],
        }));
        mount_token(&mut s);
        assert_eq!(s["volumes"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            s["containers"][0]["volumeMounts"][0]["name"],
            json!("kube-api-access-abcde")
        );
    }

    #[test]
    fn the_pod_overrides_the_account_on_automounting() {
        let sa_off = json!({"automountServiceAccountToken": false});
        assert!(!automount(&spec(json!({})), Some(&sa_off)));
        assert!(automount(
            &spec(json!({"automountServiceAccountToken": true})),
            Some(&sa_off)
        ));
        assert!(!automount(
            &spec(json!({"automountServiceAccountToken": false})),
            None
        ));
        assert!(automount(&spec(json!({})), None));
    }
}
