//! LocalStore behaviour beyond the conformance suite: what survives a reopen,
//! periodic compaction, a lagging watcher whose history was compacted, and
//! shutdown.

use crate::common;

use std::time::Duration;

use apiserver::store::{
    CompactionPolicy, EventType, ListRequest, LocalStore, Store, StoreError, WatchItem,
};
use common::{Watcher, eventually, local_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_data_revisions_and_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(local_options(dir.path()))
        .await
        .expect("open");
    let a = store.create("a", b"1".to_vec()).await.expect("create");
    let b = store
        .update("a", b"2".to_vec(), a.mod_revision)
        .await
        .expect("update");
    store.create("b", b"1".to_vec()).await.expect("create");
    store.delete("b", None).await.expect("delete");
    store.compact(a.mod_revision).await.expect("compact");
    let current = store.current_revision().await.expect("rev");
    store.close().await;

    let store = LocalStore::open(local_options(dir.path()))
        .await
        .expect("reopen");
    assert_eq!(store.current_revision().await.expect("rev"), current);
    assert_eq!(
        store.compacted_revision().await.expect("compacted"),
        a.mod_revision
    );
    assert_eq!(store.get("a").await.expect("get"), Some(b.clone()));
    assert_eq!(store.get("b").await.expect("get"), None);
    let mut w = Watcher::new(
        store
            .watch("", a.mod_revision)
            .await
            .expect("watch history"),
    );
    w.until_revision(current).await;
    let kinds: Vec<_> = w.events.iter().map(|e| (e.revision(), e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (a.mod_revision, EventType::Added),
            (b.mod_revision, EventType::Modified),
            (b.mod_revision + 1, EventType::Added),
            (current, EventType::Deleted),
        ]
    );
    let next = store
        .create("c", b"1".to_vec())
        .await
        .expect("write after reopen");
    assert_eq!(next.mod_revision, current + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _store = LocalStore::open(local_options(dir.path()))
        .await
        .expect("open");
    let err = LocalStore::open(local_options(dir.path()))
        .await
        .err()
        .expect("a second open must fail");
    assert!(
        err.to_string().contains("another korral server"),
        "actionable error: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_compaction_bounds_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = local_options(dir.path());
    options.compaction = Some(CompactionPolicy {
        interval: Duration::from_millis(100),
        max_revisions: 10,
    });
    let store = LocalStore::open(options).await.expect("open");
    for i in 0..50 {
        store
            .create(&format!("k/{i}"), b"v".to_vec())
            .await
            .expect("create");
    }
    let current = store.current_revision().await.expect("rev");
    // Within two runs: at most 10 revisions kept, and then (no writes) all of
    // them, since each run compacts to the previous run's revision.
    eventually("history bounded to 10 revisions", || async {
        store.compacted_revision().await.expect("compacted") >= current - 10
    })
    .await;
    eventually("history compacted to the previous run", || async {
        store.compacted_revision().await.expect("compacted") == current
    })
    .await;
    assert!(matches!(
        store
            .list(ListRequest {
                revision: Some(current - 1),
                ..ListRequest::default()
            })
            .await,
        Err(StoreError::Compacted { .. })
    ));
    assert_eq!(
        store
            .list(ListRequest::default())
            .await
            .expect("list")
            .kvs
            .len(),
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_compaction_runs_while_writes_never_stop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = local_options(dir.path());
    options.compaction = Some(CompactionPolicy {
        interval: Duration::from_millis(50),
        max_revisions: i64::MAX / 2,
    });
    let store = std::sync::Arc::new(LocalStore::open(options).await.expect("open"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..32 {
        let (store, stop) = (store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                store
                    .create(&format!("w/{t}/{i}"), b"v".to_vec())
                    .await
                    .expect("create");
                i += 1;
            }
        }));
    }
    eventually("a periodic compaction under load", || async {
        store.compacted_revision().await.expect("compacted") > 0
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    for w in writers {
        w.await.expect("writer");
    }
    let compacted = store.compacted_revision().await.expect("compacted");
    let current = store.current_revision().await.expect("rev");
    assert!(
        compacted < current,
        "compaction keeps the last interval of history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_watcher_whose_history_is_gone_ends_with_compacted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(local_options(dir.path()))
        .await
        .expect("open");
    let start = store.current_revision().await.expect("rev") + 1;
    let mut stream = store.watch("", 0).await.expect("watch");
    // The watcher has caught up (and gone live) when it reports progress.
    match stream.next().await {
        Some(Ok(WatchItem::Progress(p))) => assert_eq!(p, start - 1),
        other => panic!("expected the caught-up Progress first, got {other:?}"),
    }
    // Far more writes than the stream and the in-memory buffer hold, unread.
    for i in 0..700 {
        store
            .create(&format!("k/{i:04}"), b"v".to_vec())
            .await
            .expect("create");
    }
    let current = store.current_revision().await.expect("rev");
    store.compact(current).await.expect("compact");
    let mut next = start;
    loop {
        match tokio::time::timeout(common::DEADLINE, stream.next())
            .await
            .expect("the watch answers")
        {
            Some(Ok(WatchItem::Event(ev))) => {
                assert_eq!(ev.revision(), next, "no gap before the error");
                next += 1;
            }
            Some(Ok(WatchItem::Progress(_))) => {}
            Some(Err(e)) => {
                assert_eq!(
                    e,
                    StoreError::Compacted {
                        requested: next,
                        compacted: current
                    }
                );
                break;
            }
            None => panic!("the stream ended without the Compacted error"),
        }
    }
    assert!(next < current, "the watcher had lagged");
    assert!(stream.next().await.is_none(), "the error is the last item");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_end_when_the_store_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(local_options(dir.path()))
        .await
        .expect("open");
    let mut w = Watcher::new(store.watch("", 0).await.expect("watch"));
    let kv = store.create("a", b"1".to_vec()).await.expect("create");
    w.until_revision(kv.mod_revision).await;
    store.close().await;
    loop {
        match w.next().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("closing is not an error: {e}"),
            None => break,
        }
    }
    // And the file can be opened again at once.
    let store = LocalStore::open(local_options(dir.path()))
        .await
        .expect("reopen");
    assert_eq!(store.get("a").await.expect("get"), Some(kv));
}
