//! Helpers shared by the store tests: a backend under test (LocalStore in a
//! temp dir, or EtcdStore on a private etcd), and watch readers that wait for
//! a condition with a deadline and check the `Progress` promise as they go.

#![allow(dead_code)]

pub mod etcd;

use std::sync::Arc;
use std::time::Duration;

use apiserver::store::{
    EtcdOptions, EtcdStore, Event, LocalOptions, LocalStore, Revision, Store, StoreError,
    WatchItem, WatchStream,
};

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A store under test and what must outlive it.
pub struct Backend {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The private etcd, for etcd tests that restart it.
    pub etcd: Option<etcd::EtcdProcess>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// A fresh LocalStore in a temp dir, tuned so tests exercise its slow
    /// paths: a tiny in-memory event buffer (watchers lag and replay from the
    /// file) and frequent progress.
    pub async fn local() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir for the store");
        let store = LocalStore::open(local_options(dir.path()))
            .await
            .expect("open a LocalStore");
        Backend {
            store: Arc::new(store),
            etcd: None,
            _dir: Some(dir),
        }
    }

    /// An EtcdStore on a private etcd. Fails the test (never skips it) if
    /// etcd cannot be started.
    pub async fn etcd() -> Backend {
        let etcd = etcd::EtcdProcess::start()
            .await
            .unwrap_or_else(|e| panic!("cannot start etcd for the etcd store tests: {e}"));
        let store = EtcdStore::connect(EtcdOptions::new([etcd.endpoint()]))
            .await
            .expect("connect an EtcdStore to the private etcd");
        Backend {
            store: Arc::new(store),
            etcd: Some(etcd),
            _dir: None,
        }
    }
}

/// LocalStore options for tests (no periodic compaction, small buffers).
pub fn local_options(dir: &std::path::Path) -> LocalOptions {
    let mut options = LocalOptions::new(dir.join("store.redb"));
    options.compaction = None;
    options.progress_interval = Duration::from_millis(200);
    options.watch_buffer = 16;
    options
}

/// Reads a watch, checking as it goes that revisions only grow and that no
/// event arrives at or below a revision a `Progress` already covered.
pub struct Watcher {
    stream: WatchStream,
    /// Every event received, in order.
    pub events: Vec<Event>,
    /// The highest `Progress` received.
    pub progress: Revision,
    last_event: Revision,
}

impl Watcher {
    /// Wraps a watch stream.
    pub fn new(stream: WatchStream) -> Self {
        Watcher {
            stream,
            events: Vec::new(),
            progress: 0,
            last_event: 0,
        }
    }

    /// The next item within the deadline, checked.
    pub async fn next(&mut self) -> Option<Result<WatchItem, StoreError>> {
        let item = tokio::time::timeout(DEADLINE, self.stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "watch gave nothing for {DEADLINE:?}; events so far: {}, last progress {}",
                    self.events.len(),
                    self.progress
                )
            });
        match &item {
            Some(Ok(WatchItem::Event(ev))) => {
                let rev = ev.revision();
                assert!(
                    rev >= self.last_event,
                    "event at revision {rev} after one at {}",
                    self.last_event
                );
                assert!(
                    rev > self.progress,
                    "event at revision {rev} after Progress({}) promised everything up to it",
                    self.progress
                );
                if let Some(prev) = self.events.last() {
                    assert!(
                        !(prev.revision() == rev && prev.kv.key == ev.kv.key),
                        "duplicate event: {ev:?}"
                    );
                }
                self.last_event = rev;
                self.events.push(ev.clone());
            }
            Some(Ok(WatchItem::Progress(p))) => {
                assert!(*p >= 1, "Progress({p}) is not a revision");
                self.progress = self.progress.max(*p);
            }
            _ => {}
        }
        item
    }

    /// Reads until `done` holds (checked after each item), failing the test
    /// on an error, the end of the stream, or the deadline.
    pub async fn until(&mut self, what: &str, mut done: impl FnMut(&Watcher) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "watch: timed out waiting for {what}; got {} events, progress {}",
                self.events.len(),
                self.progress
            );
            match self.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("watch failed while waiting for {what}: {e}"),
                None => panic!("watch ended while waiting for {what}"),
            }
        }
    }

    /// Reads until an event at or past `rev` has arrived.
    pub async fn until_revision(&mut self, rev: Revision) {
        self.until(&format!("the event at revision {rev}"), |w| {
            w.events.last().is_some_and(|e| e.revision() >= rev)
        })
        .await;
    }
}

/// Waits until `cond` holds, polling, failing the test after the deadline.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        // Polling interval; the loop re-checks the condition.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
