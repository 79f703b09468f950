//! Test fixtures driven by a watch (an informer on pods), never by polling:
//! a handler runs on every change with the pods as they are now, in a
//! thread and runtime of its own, until the fixture is dropped.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use reconcilers::runtime::watcher::Config as WatchConfig;
use reconcilers::runtime::{Client, Informer};

/// What a handler returns: the work it does for one change.
pub type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A running pod watch; stops when dropped.
pub struct PodWatch {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PodWatch {
    /// Watches the pods matching `selector` (all namespaces) and calls
    /// `handler` with every matching pod after each change (and once synced).
    pub fn start(
        kubeconfig: &Path,
        name: &str,
        selector: Option<&str>,
        mut handler: impl FnMut(&Client, Vec<Arc<Pod>>) -> Work + Send + 'static,
    ) -> PodWatch {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (kubeconfig, name) = (kubeconfig.to_path_buf(), name.to_string());
        let selector = selector.map(str::to_string);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = Client::from_kubeconfig(Some(&kubeconfig), &name).expect("client");
                let informer = Informer::start(
                    client.api::<Pod>(None),
                    WatchConfig {
                        label_selector: selector,
                        ..Default::default()
                    },
                    Vec::new(),
                );
                let mut changes = informer.subscribe();
                let cache = informer.cache();
                tokio::select! {
                    _ = cache.wait_synced() => {}
                    _ = &mut stopped => return,
                }
                loop {
                    handler(&client, cache.all()).await;
                    tokio::select! {
                        // a change, or a lagging receiver: either way, look again
                        r = changes.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r { return },
                        _ = &mut stopped => return,
                    }
                }
            });
        });
        PodWatch {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether a pod's Ready condition is True.
pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
