//! A stand-in for node daemons in controller tests: marks pods Running and
//! Ready (except those whose image contains "bad"), and finishes the
//! deletion of pods in their grace period, as a kubelet would.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reconcilers::runtime::{Client, DeleteParams, ListParams, Patch, WriteParams};
use schemas::core::Pod;
use serde_json::json;

/// A running fake kubelet; stops when dropped.
pub struct FakeKubelet {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl FakeKubelet {
    /// Starts tending the pods of the cluster behind `kubeconfig`.
    pub fn start(kubeconfig: &Path) -> FakeKubelet {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let kubeconfig = kubeconfig.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = Client::from_kubeconfig(Some(&kubeconfig), "fake-kubelet").expect("client");
                let all = client.api::<Pod>(None);
                let mut ip = 10u32;
                while !flag.load(Ordering::Relaxed) {
                    if let Ok(list) = all.list(&ListParams::default()).await {
                        for p in list.items {
                            let ns = p.metadata.namespace().to_string();
                            let api = client.api::<Pod>(Some(&ns));
                            let name = p.metadata.name().to_string();
                            if p.metadata.deletion_timestamp.is_some() {
                                let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
                                let _ = api.delete(&name, &dp).await;
                                continue;
                            }
                            let image = p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default();
                            if is_ready(&p) || image.contains("bad") {
                                continue;
                            }
                            ip += 1;
                            let now = schemas::Time::now().to_string();
                            let status = json!({"status": {
                                "phase": "Running",
                                "podIP": format!("10.244.0.{}", ip % 250 + 2),
                                "conditions": [
                                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}
                                ],
                                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": image, "imageID": "", "started": true, "state": {"running": {"startedAt": now}}}]
                            }});
                            let _ = api.patch_status(&name, &Patch::Merge(status), &WriteParams::default()).await;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        });
        FakeKubelet {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
