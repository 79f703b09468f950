//! The store conformance suite: every property below runs, unchanged, against
//! both backends (`local::*` on LocalStore, `etcd::*` on EtcdStore with a
//! private etcd). A backend passes when it keeps the semantics documented at
//! the top of `apiserver/src/store/mod.rs`.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use apiserver::store::{
    EventType, KeyValue, ListRequest, ListResponse, Revision, Store, StoreError, WatchItem,
};
use common::{Watcher, eventually};

/// Instantiates each property as a test for each backend.
macro_rules! suite {
    ($($prop:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $prop() {
                    let backend = super::common::Backend::local().await;
                    super::$prop(backend.store.clone()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $prop() {
                    let backend = super::common::Backend::etcd().await;
                    super::$prop(backend.store.clone()).await;
                }
            )*
        }
    };
}

suite!(
    writes_are_compare_and_swap,
    recreated_keys_get_a_new_create_revision,
    list_reads_a_prefix_at_any_revision,
    concurrent_writers_exactly_one_wins_each_round,
    concurrent_increments_lose_no_update,
    watch_from_behind_catches_up_while_writes_continue,
    slow_watcher_loses_nothing,
    pagination_is_a_snapshot_while_writes_continue,
    compaction_drops_old_revisions_only,
    watch_delivers_previous_values,
    idle_watch_reports_progress,
);

fn bytes(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn list(prefix: &str) -> ListRequest {
    ListRequest {
        prefix: prefix.into(),
        ..ListRequest::default()
    }
}

fn keys(resp: &ListResponse) -> Vec<&str> {
    resp.kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn writes_are_compare_and_swap(store: Arc<dyn Store>) {
    let r0 = store.current_revision().await.expect("current revision");
    assert!(r0 >= 1, "a store starts at revision 1 or later, got {r0}");
    let key = "pods/default/web";

    let a = store.create(key, bytes("v1")).await.expect("create");
    assert_eq!(
        a,
        KeyValue {
            key: key.into(),
            value: bytes("v1"),
            create_revision: r0 + 1,
            mod_revision: r0 + 1,
            version: 1
        }
    );
    assert_eq!(store.current_revision().await.expect("rev"), r0 + 1);
    assert_eq!(store.get(key).await.expect("get"), Some(a.clone()));
    assert_eq!(store.get("pods/default/none").await.expect("get"), None);

    // Failed writes change nothing and do not bump the revision.
    assert_eq!(
        store.create(key, bytes("again")).await,
        Err(StoreError::AlreadyExists { key: key.into() })
    );
    assert_eq!(
        store.update(key, bytes("x"), a.mod_revision - 1).await,
        Err(StoreError::Conflict {
            key: key.into(),
            expected: a.mod_revision - 1,
            actual: a.mod_revision
        })
    );
    assert_eq!(
        store
            .update("pods/default/none", bytes("x"), a.mod_revision)
            .await,
        Err(StoreError::NotFound {
            key: "pods/default/none".into()
        })
    );
    assert_eq!(
        store.update("pods/default/none", bytes("x"), 0).await,
        Err(StoreError::NotFound {
            key: "pods/default/none".into()
        }),
        "update with expected 0 must not create the key"
    );
    assert_eq!(store.current_revision().await.expect("rev"), r0 + 1);
    assert_eq!(store.get(key).await.expect("get"), Some(a.clone()));

    let b = store
        .update(key, bytes("v2"), a.mod_revision)
        .await
        .expect("update");
    assert_eq!(
        b,
        KeyValue {
            key: key.into(),
            value: bytes("v2"),
            create_revision: a.create_revision,
            mod_revision: r0 + 2,
            version: 2
        }
    );
    assert_eq!(store.get(key).await.expect("get"), Some(b.clone()));

    assert_eq!(
        store.delete(key, Some(a.mod_revision)).await,
        Err(StoreError::Conflict {
            key: key.into(),
            expected: a.mod_revision,
            actual: b.mod_revision
        })
    );
    assert_eq!(
        store.delete("pods/default/none", None).await,
        Err(StoreError::NotFound {
            key: "pods/default/none".into()
        })
    );
    let d = store
        .delete(key, Some(b.mod_revision))
        .await
        .expect("delete");
    assert_eq!(d.prev, b);
    assert_eq!(d.revision, r0 + 3);
    assert_eq!(store.get(key).await.expect("get"), None);
    assert_eq!(
        store.update(key, bytes("v3"), b.mod_revision).await,
        Err(StoreError::NotFound { key: key.into() })
    );
    assert_eq!(store.current_revision().await.expect("rev"), r0 + 3);

    // An unconditional delete.
    let c = store.create("cm/x", bytes("1")).await.expect("create");
    let d = store.delete("cm/x", None).await.expect("delete");
    assert_eq!((d.prev, d.revision), (c, r0 + 5));
}

async fn recreated_keys_get_a_new_create_revision(store: Arc<dyn Store>) {
    let first = store.create("k/a", bytes("1")).await.expect("create");
    store
        .update("k/a", bytes("2"), first.mod_revision)
        .await
        .expect("update");
    let deleted = store.delete("k/a", None).await.expect("delete");
    let second = store.create("k/a", bytes("3")).await.expect("re-create");
    assert_eq!(second.create_revision, deleted.revision + 1);
    assert_eq!(second.mod_revision, second.create_revision);
    assert_eq!(second.version, 1, "version restarts at 1");
    assert_ne!(second.create_revision, first.create_revision);

    let mut w = Watcher::new(
        store
            .watch("k/", first.create_revision)
            .await
            .expect("watch"),
    );
    w.until_revision(second.mod_revision).await;
    let kinds: Vec<EventType> = w.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventType::Added,
            EventType::Modified,
            EventType::Deleted,
            EventType::Added
        ]
    );
    assert_eq!(w.events[3].kv, second);
    assert_eq!(w.events[3].prev, None);
}

async fn list_reads_a_prefix_at_any_revision(store: Arc<dyn Store>) {
    for k in [
        "pods/a/1",
        "pods/a/2",
        "pods/b/1",
        "services/a/1",
        "pods/a/3",
    ] {
        store.create(k, bytes("v1")).await.expect("create");
    }
    let before = store.current_revision().await.expect("rev");
    let two = store.get("pods/a/2").await.expect("get").expect("present");
    store
        .update("pods/a/2", bytes("v2"), two.mod_revision)
        .await
        .expect("update");
    store.delete("pods/a/1", None).await.expect("delete");
    store.create("pods/a/0", bytes("v1")).await.expect("create");
    let now = store.current_revision().await.expect("rev");

    let latest = store.list(list("pods/a/")).await.expect("list");
    assert_eq!(keys(&latest), ["pods/a/0", "pods/a/2", "pods/a/3"]);
    assert_eq!(latest.revision, now);
    assert!(!latest.more);
    assert_eq!(latest.kvs[1].value, bytes("v2"));
    assert_eq!(latest.kvs[1].version, 2);

    let old = store
        .list(ListRequest {
            revision: Some(before),
            ..list("pods/a/")
        })
        .await
        .expect("list at an older revision");
    assert_eq!(keys(&old), ["pods/a/1", "pods/a/2", "pods/a/3"]);
    assert_eq!(old.revision, before);
    assert_eq!(old.kvs[1], two, "the old value with its old revisions");

    // Pagination at the latest and at an older revision.
    let page = store
        .list(ListRequest {
            limit: Some(2),
            ..list("pods/a/")
        })
        .await
        .expect("page 1");
    assert_eq!(
        (keys(&page), page.more),
        (vec!["pods/a/0", "pods/a/2"], true)
    );
    let page = store
        .list(ListRequest {
            limit: Some(2),
            start_after: Some("pods/a/2".into()),
            revision: Some(page.revision),
            ..list("pods/a/")
        })
        .await
        .expect("page 2");
    assert_eq!((keys(&page), page.more), (vec!["pods/a/3"], false));
    let page = store
        .list(ListRequest {
            limit: Some(1),
            start_after: Some("pods/a/1".into()),
            revision: Some(before),
            ..list("pods/a/")
        })
        .await
        .expect("old page");
    assert_eq!((keys(&page), page.more), (vec!["pods/a/2"], true));
    assert_eq!(page.kvs[0].value, bytes("v1"));
    let page = store
        .list(ListRequest {
            limit: Some(2),
            start_after: Some("pods/a/2".into()),
            revision: Some(before),
            ..list("pods/a/")
        })
        .await
        .expect("last old page");
    assert_eq!((keys(&page), page.more), (vec!["pods/a/3"], false));

    let all = store.list(list("")).await.expect("list all");
    assert_eq!(
        keys(&all),
        [
            "pods/a/0",
            "pods/a/2",
            "pods/a/3",
            "pods/b/1",
            "services/a/1"
        ]
    );
    let none = store.list(list("secrets/")).await.expect("list");
    assert!(none.kvs.is_empty() && !none.more);
    let at_start = store
        .list(ListRequest {
            revision: Some(1),
            ..list("")
        })
        .await
        .expect("list at revision 1");
    assert!(at_start.kvs.is_empty(), "nothing existed at revision 1");

    assert_eq!(
        store
            .list(ListRequest {
                revision: Some(now + 1),
                ..list("pods/")
            })
            .await,
        Err(StoreError::FutureRevision {
            requested: now + 1,
            current: now
        })
    );
}

async fn concurrent_writers_exactly_one_wins_each_round(store: Arc<dyn Store>) {
    const WRITERS: usize = 4;
    const ROUNDS: usize = 15;
    store.create("race/key", bytes("0")).await.expect("create");
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..ROUNDS {
                barrier.wait().await;
                let cur = store.get("race/key").await.expect("get").expect("present");
                barrier.wait().await;
                let n: u64 = String::from_utf8_lossy(&cur.value)
                    .parse()
                    .expect("a number");
                let res = store
                    .update(
                        "race/key",
                        (n + 1).to_string().into_bytes(),
                        cur.mod_revision,
                    )
                    .await;
                outcomes.push((cur.mod_revision, res));
                barrier.wait().await;
            }
            outcomes
        }));
    }
    let mut per_task = Vec::new();
    for t in tasks {
        per_task.push(t.await.expect("writer task"));
    }
    for round in 0..ROUNDS {
        let results: Vec<_> = per_task.iter().map(|o| &o[round]).collect();
        let winners: Vec<&KeyValue> = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (expected, r) in &results {
            if let Err(e) = r {
                assert_eq!(
                    e,
                    &StoreError::Conflict {
                        key: "race/key".into(),
                        expected: *expected,
                        actual: winners[0].mod_revision
                    },
                    "round {round}"
                );
            }
        }
    }
    let last = store.get("race/key").await.expect("get").expect("present");
    assert_eq!(last.value, ROUNDS.to_string().into_bytes());
    assert_eq!(last.version, ROUNDS as i64 + 1);
}

async fn concurrent_increments_lose_no_update(store: Arc<dyn Store>) {
    const WRITERS: usize = 4;
    const EACH: usize = 10;
    store.create("counter", bytes("0")).await.expect("create");
    let conflicts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (store, conflicts) = (store.clone(), conflicts.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                loop {
                    let cur = store.get("counter").await.expect("get").expect("present");
                    let n: u64 = String::from_utf8_lossy(&cur.value)
                        .parse()
                        .expect("a number");
                    match store
                        .update(
                            "counter",
                            (n + 1).to_string().into_bytes(),
                            cur.mod_revision,
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let last = store.get("counter").await.expect("get").expect("present");
    assert_eq!(last.value, (WRITERS * EACH).to_string().into_bytes());
    assert_eq!(last.version, (WRITERS * EACH) as i64 + 1);
}

/// One acknowledged write: its revision, key and new value (`None`: deleted).
type Ack = (Revision, String, Option<Vec<u8>>);

/// Writes `n` changes under `prefix` (creates, updates, deletes, cycling over
/// a few keys) interleaved with writes under `other/`, returning the acks.
async fn churn(store: &dyn Store, prefix: &str, n: usize, tag: &str) -> Vec<Ack> {
    let mut acks = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}{}", i % 7);
        let value = format!("{tag}-{i}").into_bytes();
        let ack = match store.get(&key).await.expect("get") {
            None => {
                let kv = store.create(&key, value.clone()).await.expect("create");
                (kv.mod_revision, key, Some(value))
            }
            Some(cur) if i.is_multiple_of(5) => {
                let d = store
                    .delete(&key, Some(cur.mod_revision))
                    .await
                    .expect("delete");
                (d.revision, key, None)
            }
            Some(cur) => {
                let kv = store
                    .update(&key, value.clone(), cur.mod_revision)
                    .await
                    .expect("update");
                (kv.mod_revision, key, Some(value))
            }
        };
        acks.push(ack);
        if i.is_multiple_of(3) {
            let other = format!("other/{tag}-{i}");
            store
                .create(&other, bytes("x"))
                .await
                .expect("create other");
        }
    }
    acks
}

fn assert_events_match(events: &[apiserver::store::Event], acks: &[Ack]) {
    let got: Vec<Ack> = events
        .iter()
        .map(|e| {
            let value = (e.kind != EventType::Deleted).then(|| e.kv.value.clone());
            (e.revision(), e.kv.key.clone(), value)
        })
        .collect();
    assert_eq!(got.len(), acks.len(), "event count");
    for (i, (g, a)) in got.iter().zip(acks).enumerate() {
        assert_eq!(g, a, "event {i}");
    }
}

async fn watch_from_behind_catches_up_while_writes_continue(store: Arc<dyn Store>) {
    let early = churn(&*store, "w/", 120, "early").await;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { churn(&*store, "w/", 120, "late").await })
    };
    // Watchers start one after another while the writer runs, each from an
    // older revision, so their hand-over from history to live events lands
    // at different moments of the write stream.
    let mut watchers = Vec::new();
    for (n, from) in [40, 10, 70, 0, 100, 55].into_iter().enumerate() {
        let start = early[from].0;
        watchers.push((
            from,
            Watcher::new(store.watch("w/", start).await.expect("watch")),
        ));
        let seen = store.current_revision().await.expect("rev");
        if n % 2 == 1 {
            eventually("the writer to move on", || {
                let store = store.clone();
                async move { store.current_revision().await.expect("rev") >= seen + 3 }
            })
            .await;
        }
    }
    let late = writer.await.expect("writer");
    let last = late.last().expect("late writes").0;
    for (from, mut w) in watchers {
        w.until_revision(last).await;
        let expected: Vec<Ack> = early[from..].iter().chain(&late).cloned().collect();
        assert_events_match(&w.events, &expected);
    }
}

async fn slow_watcher_loses_nothing(store: Arc<dyn Store>) {
    let mut w = Watcher::new(store.watch("slow/", 0).await.expect("watch"));
    // Nobody reads the stream while 600 writes land (8 writers at a time).
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..75 {
                let kv = store
                    .create(&format!("slow/{t}-{i}"), format!("{t}-{i}").into_bytes())
                    .await
                    .expect("create");
                revs.push(kv);
            }
            revs
        }));
    }
    let mut written = Vec::new();
    for t in tasks {
        written.extend(t.await.expect("writer"));
    }
    written.sort_by_key(|kv| kv.mod_revision);
    let last = written.last().expect("writes").mod_revision;
    w.until_revision(last).await;
    let got: Vec<&KeyValue> = w.events.iter().map(|e| &e.kv).collect();
    let want: Vec<&KeyValue> = written.iter().collect();
    assert_eq!(got, want);
}

async fn pagination_is_a_snapshot_while_writes_continue(store: Arc<dyn Store>) {
    // The state: key → (value, mod revision).
    let mut state: BTreeMap<String, (Vec<u8>, Revision)> = BTreeMap::new();
    for i in 0..60 {
        let key = format!("p/{i:03}");
        let kv = store.create(&key, bytes("init")).await.expect("create");
        state.insert(key, (kv.value, kv.mod_revision));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, stop, written) = (store.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut acks: Vec<Ack> = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Acquire) {
                // Walk the keys in a scattered order: update, delete, re-create.
                let key = format!("p/{:03}", (i * 37) % 70);
                let value = format!("w{i}").into_bytes();
                let ack = match store.get(&key).await.expect("get") {
                    None => {
                        let kv = store.create(&key, value.clone()).await.expect("create");
                        (kv.mod_revision, key, Some(value))
                    }
                    Some(_) if i.is_multiple_of(4) => {
                        let d = store.delete(&key, None).await.expect("delete");
                        (d.revision, key, None)
                    }
                    Some(cur) => {
                        let kv = store
                            .update(&key, value.clone(), cur.mod_revision)
                            .await
                            .expect("update");
                        (kv.mod_revision, key, Some(value))
                    }
                };
                acks.push(ack);
                written.fetch_add(1, Ordering::Release);
                i += 1;
            }
            acks
        })
    };

    let mut pages = Vec::new();
    // after each page: how many keys the store counts in the rest
    let mut counted = Vec::new();
    let mut req = ListRequest {
        limit: Some(7),
        ..list("p/")
    };
    loop {
        // Let a few writes land between pages.
        let seen = written.load(Ordering::Acquire);
        eventually("writes between pages", || {
            let written = written.clone();
            async move { written.load(Ordering::Acquire) >= seen + 3 }
        })
        .await;
        let page = store.list(req.clone()).await.expect("page");
        req.revision = Some(page.revision);
        req.start_after = page.kvs.last().map(|kv| kv.key.clone());
        let more = page.more;
        pages.push(page);
        counted.push(store.count(req.clone()).await.expect("count"));
        if !more {
            break;
        }
    }
    stop.store(true, Ordering::Release);
    let acks = writer.await.expect("writer");

    let at = pages[0].revision;
    assert!(
        pages.iter().all(|p| p.revision == at),
        "every page at one revision"
    );
    assert!(
        acks.iter().any(|a| a.0 > at),
        "writes continued after the first page"
    );
    for (rev, key, value) in acks.iter().filter(|a| a.0 <= at) {
        match value {
            Some(v) => state.insert(key.clone(), (v.clone(), *rev)),
            None => state.remove(key),
        };
    }
    let got: Vec<(String, (Vec<u8>, Revision))> = pages
        .iter()
        .flat_map(|p| &p.kvs)
        .map(|kv| (kv.key.clone(), (kv.value.clone(), kv.mod_revision)))
        .collect();
    let want: Vec<(String, (Vec<u8>, Revision))> = state.into_iter().collect();
    assert_eq!(got, want);
    assert!(pages.len() > 3, "several pages were read");
    // the count of what follows a page is at the snapshot too
    for (i, n) in counted.iter().enumerate() {
        let rest: usize = pages[i + 1..].iter().map(|p| p.kvs.len()).sum();
        assert_eq!(*n, rest, "keys after page {i}");
    }
}

async fn compaction_drops_old_revisions_only(store: Arc<dyn Store>) {
    assert_eq!(store.compacted_revision().await.expect("compacted"), 0);
    for i in 0..5 {
        store
            .create(&format!("c/{i}"), bytes("a"))
            .await
            .expect("create");
    }
    let mid_kv = store
        .update(
            "c/0",
            bytes("b"),
            store
                .get("c/0")
                .await
                .expect("get")
                .expect("c/0")
                .mod_revision,
        )
        .await
        .expect("update");
    let mid = mid_kv.mod_revision;
    let mut later = Vec::new();
    for i in 1..4 {
        let cur = store
            .get(&format!("c/{i}"))
            .await
            .expect("get")
            .expect("present");
        let kv = store
            .update(&format!("c/{i}"), bytes("c"), cur.mod_revision)
            .await
            .expect("update");
        later.push(kv);
    }
    store.delete("c/4", None).await.expect("delete");
    let before = store.list(list("c/")).await.expect("list");
    let at_mid = store
        .list(ListRequest {
            revision: Some(mid),
            ..list("c/")
        })
        .await
        .expect("list at mid");

    store.compact(mid).await.expect("compact");
    assert_eq!(store.compacted_revision().await.expect("compacted"), mid);

    assert_eq!(
        store
            .list(ListRequest {
                revision: Some(mid - 1),
                ..list("c/")
            })
            .await,
        Err(StoreError::Compacted {
            requested: mid - 1,
            compacted: mid
        })
    );
    let still = store
        .list(ListRequest {
            revision: Some(mid),
            ..list("c/")
        })
        .await
        .expect("list at the compacted revision itself");
    assert_eq!(still.kvs, at_mid.kvs);
    let after = store.list(list("c/")).await.expect("list latest");
    assert_eq!(after.kvs, before.kvs, "current data intact");

    match store.watch("c/", mid - 1).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (mid - 1, mid)),
        Err(e) => panic!("watch below the compacted revision: {e}"),
        Ok(_) => panic!("watch below the compacted revision must fail"),
    }
    let mut w = Watcher::new(
        store
            .watch("c/", mid)
            .await
            .expect("watch at the compacted revision"),
    );
    let last = store.current_revision().await.expect("rev");
    w.until_revision(last).await;
    let revs: Vec<Revision> = w.events.iter().map(|e| e.revision()).collect();
    let mut want = vec![mid];
    want.extend(later.iter().map(|kv| kv.mod_revision));
    want.push(last);
    assert_eq!(revs, want);
    assert_eq!(w.events[0].kv, mid_kv);

    // Compacting an older revision again is a no-op; a future one is refused.
    store
        .compact(mid - 1)
        .await
        .expect("compact an older revision");
    assert_eq!(store.compacted_revision().await.expect("compacted"), mid);
    assert_eq!(
        store.compact(last + 5).await,
        Err(StoreError::FutureRevision {
            requested: last + 5,
            current: last
        })
    );
    // Writes and fresh watches go on.
    let mut w = Watcher::new(store.watch("c/", 0).await.expect("watch from now"));
    let kv = store.create("c/new", bytes("n")).await.expect("create");
    w.until_revision(kv.mod_revision).await;
    assert_eq!(w.events.last().map(|e| &e.kv), Some(&kv));
}

async fn watch_delivers_previous_values(store: Arc<dyn Store>) {
    let mut w = Watcher::new(store.watch("pv/", 0).await.expect("watch"));
    let v1 = store.create("pv/a", bytes("1")).await.expect("create");
    store
        .create("elsewhere/a", bytes("1"))
        .await
        .expect("create elsewhere");
    let v2 = store
        .update("pv/a", bytes("2"), v1.mod_revision)
        .await
        .expect("update");
    let v3 = store
        .update("pv/a", bytes("3"), v2.mod_revision)
        .await
        .expect("update");
    let d = store.delete("pv/a", None).await.expect("delete");
    w.until_revision(d.revision).await;
    assert_eq!(w.events.len(), 4, "{:?}", w.events);
    let e = &w.events;
    assert_eq!(
        (e[0].kind, &e[0].kv, &e[0].prev),
        (EventType::Added, &v1, &None)
    );
    assert_eq!(
        (e[1].kind, &e[1].kv, e[1].prev.as_ref()),
        (EventType::Modified, &v2, Some(&v1))
    );
    assert_eq!(
        (e[2].kind, &e[2].kv, e[2].prev.as_ref()),
        (EventType::Modified, &v3, Some(&v2))
    );
    assert_eq!(e[3].kind, EventType::Deleted);
    assert_eq!(
        e[3].kv,
        KeyValue {
            key: "pv/a".into(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: d.revision,
            version: 0
        }
    );
    assert_eq!(e[3].prev.as_ref(), Some(&v3));
}

async fn idle_watch_reports_progress(store: Arc<dyn Store>) {
    store.create("idle/a", bytes("1")).await.expect("create");
    let mut w = Watcher::new(store.watch("idle/", 0).await.expect("watch"));
    let mut last = 0;
    for i in 0..3 {
        last = store
            .create(&format!("busy/{i}"), bytes("1"))
            .await
            .expect("create")
            .mod_revision;
    }
    // No event comes for idle/, but progress must reach the latest revision.
    w.until("Progress past the busy writes", |w| w.progress >= last)
        .await;
    assert!(
        w.events.is_empty(),
        "no events for an idle prefix: {:?}",
        w.events
    );
    // And an event after progress is still delivered.
    let kv = store.create("idle/b", bytes("1")).await.expect("create");
    w.until_revision(kv.mod_revision).await;
    assert_eq!(w.events.len(), 1);
    match w.next().await {
        Some(Ok(WatchItem::Progress(p))) => assert!(p >= kv.mod_revision),
        other => panic!("expected Progress after going idle, got {other:?}"),
    }
}
