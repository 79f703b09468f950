//! A stand-in for node daemons in controller tests: marks pods Running and
//! Ready (except those whose image contains "bad"), and finishes the
//! deletion of pods in their grace period, as a kubelet would — on every
//! pod change it sees through a watch.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::core::v1::Pod;
use reconcilers::runtime::{DeleteParams, Patch, WriteParams};
use schemas::MetaExt;
use schemas::TimeExt;
use serde_json::json;

use super::pod_watch::{PodWatch, is_ready};

/// A running fake kubelet; stops when dropped.
pub struct FakeKubelet {
    _watch: PodWatch,
}

impl FakeKubelet {
    /// Starts tending the pods of the cluster behind `kubeconfig`.
    pub fn start(kubeconfig: &Path) -> FakeKubelet {
        let ip = Arc::new(AtomicU32::new(10));
        let watch = PodWatch::start(kubeconfig, "fake-kubelet", None, move |client, pods| {
            let (client, ip) = (client.clone(), ip.clone());
            Box::pin(async move {
                for p in pods {
                    tend(&client, &p, &ip).await;
                }
            })
        });
        FakeKubelet { _watch: watch }
    }
}

/// What a kubelet would do for one pod now.
async fn tend(client: &reconcilers::runtime::Client, p: &Pod, ip: &AtomicU32) {
    let api = client.api::<Pod>(Some(p.metadata.namespace_str()));
    let name = p.metadata.name_str();
    if p.metadata.deletion_timestamp.is_some() {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        let _ = api.delete(name, &dp).await;
        return;
    }
    let image = p
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    if is_ready(p) || image.contains("bad") {
        return;
    }
    let ip = ip.fetch_add(1, Ordering::Relaxed);
    let now = schemas::time::now().text();
    let status = json!({"status": {
        "phase": "Running",
        "podIP": format!("10.244.0.{}", ip % 250 + 2),
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}
        ],
        "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": image, "imageID": "", "started": true, "state": {"running": {"startedAt": now}}}]
    }});
    let _ = api
        .patch_status(name, &Patch::Merge(status), &WriteParams::default())
        .await;
}
