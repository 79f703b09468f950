//! Persistent storage on the node: a pod's PersistentVolumeClaim (or the
//! claim of a generic ephemeral volume, which the pod must control) resolves to
//! its bound volume's directory (`hostPath` or `local`; a local-path
//! volume's directory is made on first use, open to every user as k3s's
//! provisioner makes it), and the node's half of the `korral.dev/local-path`
//! provisioner — a Released volume of this node with reclaim `Delete` has
//! its directory removed and is then deleted. Only the node daemon touches
//! the node's files; controllers never do.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use reconcilers::controllers::persistentvolume::ephemeral::volume_is_for_pod;
use reconcilers::controllers::persistentvolume::{
    claim_phase, claim_volume, local_path_node, volume_phase,
};
use reconcilers::runtime::watcher::Config as WatchConfig;
use reconcilers::runtime::{Client, DeleteParams, Informer};
use schemas::MetaExt;
use tokio::sync::broadcast::error::RecvError;

/// Where this node keeps local-path volumes (announced on its Node as
/// `korral.dev/local-path-root`).
pub fn local_path_root(data_dir: &Path) -> PathBuf {
    let root = data_dir.join("storage");
    std::path::absolute(&root).unwrap_or(root)
}

/// The node directory of claim `claim` of `pod`: its bound volume's path.
/// The claim of a generic ephemeral volume (`ephemeral`) must be controlled
/// by the pod, as the kubelet checks. An unbound claim is an error the
/// pod's sync retries.
pub async fn claim_path(
    client: &Client,
    pod: &Pod,
    claim: &str,
    ephemeral: bool,
) -> Result<PathBuf, String> {
    let c = client
        .api::<PersistentVolumeClaim>(Some(pod.metadata.namespace_str()))
        .get_opt(claim)
        .await
        .map_err(|e| format!("persistentvolumeclaim {claim:?}: {e}"))?
        .ok_or_else(|| format!("persistentvolumeclaim {claim:?} not found"))?;
    if ephemeral {
        volume_is_for_pod(pod, &c)?;
    }
    let volume = match claim_volume(&c) {
        Some(v) if claim_phase(&c) == "Bound" => v.to_string(),
        _ => return Err(format!("persistentvolumeclaim {claim:?} is not bound yet")),
    };
    let pv = client
        .api::<PersistentVolume>(None)
        .get_opt(&volume)
        .await
        .map_err(|e| format!("persistentvolume {volume:?}: {e}"))?
        .ok_or_else(|| format!("persistentvolume {volume:?} bound to claim {claim:?} not found"))?;
    let spec = pv.spec.as_ref();
    if let Some(local) = spec.and_then(|s| s.local.as_ref()) {
        let p = PathBuf::from(&local.path);
        if !p.exists() {
            return Err(format!(
                "local volume {volume:?}: path {} does not exist",
                local.path
            ));
        }
        return Ok(p);
    }
    let Some(hp) = spec.and_then(|s| s.host_path.as_ref()) else {
        return Err(format!(
            "persistentvolume {volume:?}: only hostPath and local volumes can be mounted by korral's node daemon"
        ));
    };
    if local_path_node(&pv).is_some() && !Path::new(&hp.path).exists() {
        let p = Path::new(&hp.path);
        std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    crate::pods::volumes::host_path(hp)
}

/// Whether `pv` is this node's to reclaim now: a local-path volume of
/// `node`, Released, reclaim `Delete`.
fn reclaimable(pv: &PersistentVolume, node: &str) -> bool {
    local_path_node(pv) == Some(node)
        && pv.metadata.deletion_timestamp.is_none()
        && volume_phase(pv) == "Released"
        && pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Delete")
}

/// Removes a volume's directory, refusing any path but `<root>/<volume name>`.
fn remove_dir(pv: &PersistentVolume, root: &Path) -> Result<(), String> {
    let name = pv.metadata.name_str();
    let Some(path) = pv
        .spec
        .as_ref()
        .and_then(|s| s.host_path.as_ref())
        .map(|h| PathBuf::from(&h.path))
    else {
        return Ok(());
    };
    if path != root.join(name) {
        return Err(format!(
            "volume {name}: {} is not {}; leaving it alone",
            path.display(),
            root.join(name).display()
        ));
    }
    match std::fs::remove_dir_all(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Reclaims this node's Released local-path volumes with reclaim `Delete`
/// (directory removed, then the volume deleted), on every volume change and
/// every 30 s (a failed removal is retried).
pub async fn reclaim_loop(client: Client, node: String, root: PathBuf) {
    let informer = Informer::start(
        client.api::<PersistentVolume>(None),
        WatchConfig::default(),
        Vec::new(),
    );
    let mut changes = informer.subscribe();
    let cache = informer.cache();
    cache.wait_synced().await;
    let api = client.api::<PersistentVolume>(None);
    loop {
        for pv in cache.all().iter().filter(|pv| reclaimable(pv, &node)) {
            let name = pv.metadata.name_str();
            if let Err(e) = remove_dir(pv, &root) {
                tracing::warn!(volume = name, error = %e, "cannot remove the volume's directory");
                continue;
            }
            let dp = DeleteParams {
                precondition_uid: pv.metadata.uid.clone(),
                ..Default::default()
            };
            match api.delete(name, &dp).await {
                Ok(()) => tracing::info!(
                    volume = name,
                    "reclaimed: directory removed, volume deleted"
                ),
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(volume = name, error = %e, "cannot delete the volume"),
            }
        }
        match tokio::time::timeout(Duration::from_secs(30), changes.recv()).await {
            Ok(Ok(_) | Err(RecvError::Lagged(_))) | Err(_) => {}
            Ok(Err(RecvError::Closed)) => return,
        }
    }
}
