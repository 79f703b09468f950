//! A stand-in for node daemons in controller tests: marks pods Running and
//! Ready (except those whose image contains "bad"; of those, an image that
//! also contains "unpullable" is reported waiting in `ImagePullBackOff`,
//! as a kubelet whose pulls fail does), and finishes the
//! deletion of pods in their grace period, as a kubelet would — on every
//! pod change it sees through a watch.
//!
//! A pod annotated `fake-kubelet.korral.dev/exit-code: "N"` runs to
//! completion: once it is Running and Ready, its first container exits
//! with code N — phase `Succeeded` for 0, `Failed` otherwise, Ready turned
//! False and the container `terminated` with that exit code, as the
//! kubelet reports it (what Job tests need). Pods without the annotation
//! run forever, as before. `fake-kubelet.korral.dev/exit-code-by-index:
//! "0=0,3=1"` gives the pods of those completion indexes (Indexed Jobs)
//! their own exit code, over the general one.
//!
//! [`FakeKubelet::start`] tends every pod, bound or not (tests that run no
//! scheduler); [`FakeKubelet::start_for_bound`] only pods the scheduler has
//! bound to a node, as real kubelets — what tests running the scheduler
//! need, or a pod would be Ready before it has a node.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::core::v1::Pod;
use reconcilers::runtime::{DeleteParams, Patch, WriteParams};
use schemas::MetaExt;
use schemas::TimeExt;
use serde_json::json;

use super::pod_watch::{PodWatch, is_ready};

/// The annotation that makes a pod's first container exit with its value.
pub const EXIT_CODE: &str = "fake-kubelet.korral.dev/exit-code";

/// The annotation giving some completion indexes their own exit code (`"0=0,3=1"`).
pub const EXIT_CODE_BY_INDEX: &str = "fake-kubelet.korral.dev/exit-code-by-index";

/// The exit code a pod's first container ends with, if it ends.
fn exit_code(p: &Pod) -> Option<i32> {
    let annotations = p.metadata.annotations_map();
    let by_index = annotations
        .get("batch.kubernetes.io/job-completion-index")
        .zip(annotations.get(EXIT_CODE_BY_INDEX))
        .and_then(|(ix, codes)| {
            codes.split(',').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == ix).then(|| v.trim().parse::<i32>().ok())?
            })
        });
    by_index.or_else(|| annotations.get(EXIT_CODE).and_then(|c| c.parse().ok()))
}

/// A running fake kubelet; stops when dropped.
pub struct FakeKubelet {
    _watch: PodWatch,
}

impl FakeKubelet {
    /// Starts tending the pods of the cluster behind `kubeconfig`, bound to
    /// a node or not.
    pub fn start(kubeconfig: &Path) -> FakeKubelet {
        FakeKubelet::tending(kubeconfig, false)
    }

    /// Starts tending only the pods bound to a node (`spec.nodeName` set).
    pub fn start_for_bound(kubeconfig: &Path) -> FakeKubelet {
        FakeKubelet::tending(kubeconfig, true)
    }

    fn tending(kubeconfig: &Path, only_bound: bool) -> FakeKubelet {
        let ip = Arc::new(AtomicU32::new(10));
        let watch = PodWatch::start(kubeconfig, "fake-kubelet", None, move |client, pods| {
            let (client, ip) = (client.clone(), ip.clone());
            Box::pin(async move {
                // pods are tended concurrently, as a kubelet's pod workers are
                let ip = &ip;
                let client = &client;
                let tended = pods.iter().filter(|p| {
                    !only_bound || p.spec.as_ref().is_some_and(|s| s.node_name.is_some())
                });
                futures_util::future::join_all(tended.map(|p| tend(client, p, ip))).await;
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
    let phase = p
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return;
    }
    let container = p
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "c".into());
    if is_ready(p) {
        let Some(code) = exit_code(p) else {
            return;
        };
        let now = schemas::time::now().text();
        let started = p
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map_or_else(|| now.clone(), |t| t.text());
        let status = json!({"status": {
            "phase": if code == 0 { "Succeeded" } else { "Failed" },
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
            ],
            "containerStatuses": [{"name": container, "ready": false, "restartCount": 0, "image": image, "imageID": "", "started": false,
                "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": started, "finishedAt": now}}}]
        }});
        let _ = api
            .patch_status(name, &Patch::Merge(status), &WriteParams::default())
            .await;
        return;
    }
    if image.contains("bad") {
        if image.contains("unpullable")
            && p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_none()
        {
            let status = json!({"status": {
                "phase": "Pending",
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
                ],
                "containerStatuses": [{"name": container, "ready": false, "restartCount": 0, "image": image, "imageID": "", "started": false,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image {image:?}")}}}]
            }});
            let _ = api
                .patch_status(name, &Patch::Merge(status), &WriteParams::default())
                .await;
        }
        return;
    }
    let ip = ip.fetch_add(1, Ordering::Relaxed);
    let now = schemas::time::now().text();
    let status = json!({"status": {
        "phase": "Running",
        "startTime": now,
        "podIP": format!("10.244.0.{}", ip % 250 + 2),
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}
        ],
        "containerStatuses": [{"name": container, "ready": true, "restartCount": 0, "image": image, "imageID": "", "started": true, "state": {"running": {"startedAt": now}}}]
    }});
    let _ = api
        .patch_status(name, &Patch::Merge(status), &WriteParams::default())
        .await;
}
