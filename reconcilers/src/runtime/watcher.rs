//! The watcher: list at a revision, then watch from it; resume from the last
//! resourceVersion after a dropped connection; relist only on 410 Gone;
//! bookmarks keep the resume point fresh; failures back off with jitter.

use std::time::Duration;

use tokio::sync::mpsc;

use schemas::Object;

use crate::runtime::backoff::Backoff;
use crate::runtime::client::{Api, ListParams, WatchEvent};

/// What the watcher reports.
#[derive(Clone, Debug)]
pub enum Event<K> {
    /// A full (re)list: the complete current set, replacing what came before.
    Restarted(Vec<K>),
    /// An object was created or changed.
    Applied(K),
    /// An object was deleted.
    Deleted(K),
}

/// How the watcher selects objects and paces itself.
#[derive(Clone, Debug)]
pub struct Config {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// Server-side watch timeout (client-go picks 5–10 minutes at random; we ask ~290 s).
    pub watch_timeout: Duration,
    /// Reconnect when nothing (not even a bookmark) arrived for this long.
    pub idle_timeout: Duration,
    /// Page size of lists.
    pub page_size: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            label_selector: None,
            field_selector: None,
            watch_timeout: Duration::from_secs(290),
            idle_timeout: Duration::from_secs(320),
            page_size: 500,
        }
    }
}

impl Config {
    fn list_params(&self) -> ListParams {
        ListParams {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            limit: Some(self.page_size),
            ..Default::default()
        }
    }
}

/// Starts a watcher task; events arrive on the returned channel until it is dropped.
pub fn watcher<K: Object>(api: Api<K>, config: Config) -> mpsc::Receiver<Event<K>> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(run(api, config, tx));
    rx
}

async fn run<K: Object>(api: Api<K>, config: Config, tx: mpsc::Sender<Event<K>>) {
    let mut backoff = Backoff::default();
    let mut resource_version: Option<String> = None;
    loop {
        if tx.is_closed() {
            return;
        }
        let rv = match &resource_version {
            Some(rv) => rv.clone(),
            None => match api.list_all(&config.list_params()).await {
                Ok(list) => {
                    if tx.send(Event::Restarted(list.items)).await.is_err() {
                        return;
                    }
                    resource_version = Some(list.resource_version.clone());
                    list.resource_version
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(kind = K::KIND, error = %e, ?delay, "list failed; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            },
        };
        let params = ListParams {
            timeout_seconds: Some(u32::try_from(config.watch_timeout.as_secs()).unwrap_or(290)),
            ..config.list_params()
        };
        let stream = match api.watch(&params, &rv, config.idle_timeout).await {
            Ok(s) => s,
            Err(e) if e.is_gone() => {
                tracing::info!(kind = K::KIND, resource_version = %rv, "resource version too old; relisting");
                resource_version = None;
                continue;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(kind = K::KIND, error = %e, ?delay, "watch failed; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff.healthy();
        let mut stream = Box::pin(stream);
        use futures_util::StreamExt;
        let mut failed = false;
        while let Some(item) = stream.next().await {
            let forward = match item {
                Ok(WatchEvent::Added(k) | WatchEvent::Modified(k)) => {
                    resource_version = k.metadata().resource_version.clone().or(resource_version);
                    Some(Event::Applied(k))
                }
                Ok(WatchEvent::Deleted(k)) => {
                    resource_version = k.metadata().resource_version.clone().or(resource_version);
                    Some(Event::Deleted(k))
                }
                Ok(WatchEvent::Bookmark(rv)) => {
                    if !rv.is_empty() {
                        resource_version = Some(rv);
                    }
                    None
                }
                Ok(WatchEvent::Error(status)) => {
                    if status.code == Some(410) {
                        tracing::info!(kind = K::KIND, "watch expired (410); relisting");
                        resource_version = None;
                    } else {
                        tracing::warn!(kind = K::KIND, message = ?status.message, "watch error");
                        failed = true;
                    }
                    None
                }
                Err(e) => {
                    tracing::debug!(kind = K::KIND, error = %e, "watch stream ended");
                    failed = true;
                    None
                }
            };
            if let Some(ev) = forward
                && tx.send(ev).await.is_err()
            {
                return;
            }
        }
        if failed {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}
