//! The watch cache against real stores: lists from the cache equal lists
//! from the store at the same revision while a writer runs (selectors,
//! namespaces, paging, on both backends); a watch resumed from the ring gets
//! every change exactly once, in order, with a writer running; a watcher
//! that falls behind is closed without holding up the others; the ring
//! keeps fresh changes beyond its size, and a start it has dropped gets 410;
//! a watcher of one node's pods is fed only that node's changes; a
//! CustomResourceDefinition's cache goes with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use apiserver::cache::{CacheConfig, Caches, Delivery};
use apiserver::objects;
use apiserver::registry::{ListOptions, ListPage, Registry, WatchFeed, WatchOptions};
use apiserver::selectors::{FieldSelector, LabelSelector, Selectors};
use apiserver::store::{Revision, Store, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::common::{Backend, DEADLINE};

fn pod_info() -> &'static schemas::KindInfo {
    schemas::lookup("v1", "Pod").expect("pods are served")
}

fn cm_info() -> &'static schemas::KindInfo {
    schemas::lookup("v1", "ConfigMap").expect("configmaps are served")
}

fn cached_registry(store: Arc<dyn Store>, config: CacheConfig) -> (Registry, Caches) {
    let mut registry = Registry::new(store);
    registry.enable_watch_cache(config);
    let caches = registry.caches().expect("enabled").clone();
    (registry, caches)
}

fn pod(ns: &str, name: &str, rng: &mut StdRng) -> Vec<u8> {
    let app = ["web", "db"][rng.random_range(0..2)];
    let tier = rng.random_range(1..4).to_string();
    let node = ["n1", "n2", ""][rng.random_range(0..3)];
    let obj = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app, "tier": tier}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running"}});
    objects::encode(&obj).expect("encode")
}

/// Creates, updates and deletes pods at random until `stop`.
/// Writes (creates, updates, deletes) until `stop`, counting them in `writes`.
async fn churn(
    store: Arc<dyn Store>,
    stop: Arc<AtomicBool>,
    writes: tokio::sync::watch::Sender<usize>,
) {
    let mut rng = StdRng::seed_from_u64(7);
    while !stop.load(Ordering::Relaxed) {
        let ns = ["a", "b"][rng.random_range(0..2)];
        let name = format!("p{}", rng.random_range(0..30));
        let key = format!("pods/{ns}/{name}");
        let value = pod(ns, &name, &mut rng);
        let result = match store.get(&key).await {
            Ok(None) => store.create(&key, value).await.map(|_| ()),
            Ok(Some(kv)) if rng.random_bool(0.3) => {
                store.delete(&key, Some(kv.mod_revision)).await.map(|_| ())
            }
            Ok(Some(kv)) => store.update(&key, value, kv.mod_revision).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                writes.send_modify(|n| *n += 1);
            }
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {}
            Err(e) => panic!("the writer failed: {e}"),
        }
    }
}

/// Every page of a list, following continue tokens, from the cache (which
/// must answer) or the store.
async fn pages(
    registry: &Registry,
    caches: Option<&Caches>,
    ns: Option<&str>,
    first: ListOptions,
) -> Vec<ListPage> {
    let mut out = Vec::new();
    let mut opts = first;
    loop {
        let page = match caches {
            Some(c) => apiserver::cache::list::list(c, pod_info(), ns, &opts)
                .await
                .expect("a list from the cache")
                .expect("the cache answers (ready, revision reached, snapshot kept)"),
            None => registry
                .list_from_store(pod_info(), ns, &opts)
                .await
                .expect("a list from the store"),
        };
        let token = page.continue_token.clone();
        out.push(page);
        match token {
            Some(t) => {
                opts = ListOptions {
                    continue_token: Some(t),
                    resource_version: None,
                    resource_version_match: None,
                    ..opts
                }
            }
            None => return out,
        }
    }
}

async fn lists_from_the_cache_equal_lists_from_the_store(backend: Backend) {
    let store = backend.store.clone();
    let (registry, caches) = cached_registry(store.clone(), CacheConfig::default());
    assert!(
        caches.ready(pod_info(), DEADLINE).await.is_some(),
        "the pods cache becomes ready"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (writes, mut written) = tokio::sync::watch::channel(0usize);
    let writer = tokio::spawn(churn(store.clone(), stop.clone(), writes));
    let selectors = [
        ("", ""),
        ("app=web", ""),
        ("tier in (1,2)", ""),
        ("", "spec.nodeName=n1"),
        ("app!=db", "spec.nodeName!=n2"),
        ("", "metadata.name=p3"),
        ("!nope,tier>1", "status.phase=Running"),
    ];
    let mut rng = StdRng::seed_from_u64(11);
    let mut compared_items = 0;
    const ROUNDS: usize = 60;
    for round in 0..ROUNDS {
        // every round lists after at least one more write than the last
        let seen = *written.borrow_and_update();
        tokio::time::timeout(DEADLINE, written.wait_for(|n| *n > seen))
            .await
            .expect("the writer writes")
            .expect("the writer runs");
        let (labels, fields) = selectors[rng.random_range(0..selectors.len())];
        let ns = [None, Some("a"), Some("b")][rng.random_range(0..3)];
        let limit = [None, Some(1), Some(3), Some(7)][rng.random_range(0..4)];
        let opts = ListOptions {
            selectors: Selectors {
                labels: LabelSelector::parse(labels).expect("labels"),
                fields: FieldSelector::parse(fields, pod_info()).expect("fields"),
            },
            limit,
            ..Default::default()
        };
        let before = store.current_revision().await.expect("revision");
        let cached = pages(&registry, Some(&caches), ns, opts.clone()).await;
        let rev = cached[0].resource_version;
        assert!(
            rev >= before,
            "a consistent read is at least at the store's revision when it started"
        );
        let stored = pages(
            &registry,
            None,
            ns,
            ListOptions {
                resource_version: Some(rev.to_string()),
                resource_version_match: Some("Exact".into()),
                ..opts
            },
        )
        .await;
        let what = format!("round {round}: {labels:?} {fields:?} in {ns:?}, limit {limit:?}");
        assert_eq!(cached.len(), stored.len(), "{what}: pages");
        for (c, s) in cached.iter().zip(&stored) {
            assert_eq!(c.resource_version, rev, "{what}");
            assert_eq!(s.resource_version, rev, "{what}");
            assert_eq!(c.items, s.items, "{what}: items");
            assert_eq!(
                c.continue_token.is_some(),
                s.continue_token.is_some(),
                "{what}"
            );
            assert_eq!(c.remaining_item_count, s.remaining_item_count, "{what}");
            compared_items += c.items.len();
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer");
    assert!(
        *written.borrow() >= ROUNDS,
        "the writer wrote while lists ran"
    );
    assert!(compared_items > 0, "some lists were not empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_lists_from_the_cache_equal_lists_from_the_store() {
    lists_from_the_cache_equal_lists_from_the_store(Backend::local().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_lists_from_the_cache_equal_lists_from_the_store() {
    lists_from_the_cache_equal_lists_from_the_store(Backend::etcd().await).await;
}

fn configmap(ns: &str, name: &str, data: &str) -> Vec<u8> {
    objects::encode(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {"v": data}}))
    .expect("encode")
}

async fn cache_watch(registry: &Registry, rv: Revision) -> Box<apiserver::cache::CacheWatch> {
    let feed = registry
        .watch_feed(
            Arc::new(cm_info().clone()),
            Some("w"),
            WatchOptions {
                resource_version: Some(rv.to_string()),
                ..Default::default()
            },
        )
        .await
        .expect("watch");
    match feed {
        WatchFeed::Cache(w) => w,
        other => panic!("the watch is served by {}, not the cache", other.source()),
    }
}

/// The revision and type of a delivered change.
fn change(d: Delivery) -> (Revision, &'static str) {
    match d {
        Delivery::Event(kind, e) => {
            let v: Value = serde_json::from_slice(&e.json_line(kind)).expect("a JSON line");
            let rv: Revision = v["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .expect("the object's resourceVersion");
            assert_eq!(rv, e.revision, "the object is at the event's revision");
            (e.revision, kind.as_str())
        }
        other => panic!("expected a change, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_the_ring_gets_every_change_once_in_order() {
    let backend = Backend::local().await;
    let store = backend.store.clone();
    let (registry, caches) = cached_registry(store.clone(), CacheConfig::default());
    assert!(caches.ready(cm_info(), DEADLINE).await.is_some());
    let start = store.current_revision().await.expect("revision");
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut written = Vec::new();
            for i in 0..300 {
                let key = format!("configmaps/w/c{i}");
                let kv = store
                    .create(&key, configmap("w", &format!("c{i}"), "1"))
                    .await
                    .expect("create");
                written.push((kv.mod_revision, "ADDED"));
                if i % 3 == 0 {
                    let kv = store
                        .update(&key, configmap("w", &format!("c{i}"), "2"), kv.mod_revision)
                        .await
                        .expect("update");
                    written.push((kv.mod_revision, "MODIFIED"));
                }
                if i % 5 == 0 {
                    let d = store.delete(&key, None).await.expect("delete");
                    written.push((d.revision, "DELETED"));
                }
                // a change in another namespace: not this watcher's
                store
                    .create(&format!("configmaps/x/c{i}"), configmap("x", "c", "1"))
                    .await
                    .expect("create elsewhere");
                done.fetch_add(1, Ordering::Relaxed);
            }
            written
        })
    };
    crate::common::eventually("a third of the writes", || {
        let done = done.clone();
        async move { done.load(Ordering::Relaxed) >= 100 }
    })
    .await;
    // starts in the past: replays from the ring, then goes live
    let mut watch = cache_watch(&registry, start).await;
    let written = writer.await.expect("the writer");
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let d = tokio::time::timeout(DEADLINE, watch.next())
            .await
            .expect("the next change in time")
            .expect("the watch stays open");
        seen.push(change(d));
    }
    assert_eq!(seen, written);
    let after = tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
    assert!(after.is_err(), "nothing more arrives: {after:?}");
}

/// 50 writes while one watcher keeps up and another reads nothing; then
/// the slow one is drained: what it got, and the revisions written.
async fn slow_and_fast_watchers(config: CacheConfig) -> (Vec<Revision>, Vec<Revision>, Registry) {
    let backend = Backend::local().await;
    let store = backend.store.clone();
    let (registry, caches) = cached_registry(store.clone(), config);
    assert!(caches.ready(cm_info(), DEADLINE).await.is_some());
    let now = store.current_revision().await.expect("revision");
    let mut slow = cache_watch(&registry, now).await;
    let mut fast = cache_watch(&registry, now).await;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 50 {
            let d = tokio::time::timeout(DEADLINE, fast.next())
                .await
                .expect("the fast watcher gets changes in time")
                .expect("the fast watcher stays open");
            got.push(change(d).0);
        }
        got
    });
    let mut written = Vec::new();
    for i in 0..50 {
        let kv = store
            .create(&format!("configmaps/w/c{i}"), configmap("w", "c", "1"))
            .await
            .expect("create");
        written.push(kv.mod_revision);
    }
    assert_eq!(reader.await.expect("the fast watcher"), written);
    let mut delivered = Vec::new();
    while delivered.len() < written.len() {
        match tokio::time::timeout(DEADLINE, slow.next())
            .await
            .expect("the slow watcher answers at once")
        {
            Some(d) => delivered.push(change(d).0),
            None => break,
        }
    }
    (delivered, written, registry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_behind_the_live_buffer_catches_up_from_the_ring() {
    let config = CacheConfig {
        watcher_buffer: 8,
        ..CacheConfig::default()
    };
    let (delivered, written, _) = slow_and_fast_watchers(config).await;
    assert_eq!(delivered, written, "every change, once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_behind_the_ring_is_closed_without_blocking_the_others() {
    let config = CacheConfig {
        watcher_buffer: 8,
        ring: 16,
        ring_max: 16,
        ..CacheConfig::default()
    };
    let (delivered, written, registry) = slow_and_fast_watchers(config).await;
    assert!(
        delivered.len() < written.len() && written.starts_with(&delivered),
        "the slow watcher was closed after a prefix of the changes ({} of {})",
        delivered.len(),
        written.len()
    );
    // the cache still serves: a new watch from a revision in the ring is fine
    let mut again = cache_watch(&registry, written[40]).await;
    let d = tokio::time::timeout(DEADLINE, again.next())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(change(d).0, written[41]);
}

/// Creates 50 ConfigMaps in `w`; their revisions.
async fn fifty_configmaps(store: &Arc<dyn Store>) -> Vec<Revision> {
    let mut written = Vec::new();
    for i in 0..50 {
        let kv = store
            .create(&format!("configmaps/w/c{i}"), configmap("w", "c", "1"))
            .await
            .expect("create");
        written.push(kv.mod_revision);
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_keeps_fresh_changes_beyond_its_size() {
    let backend = Backend::local().await;
    let store = backend.store.clone();
    let config = CacheConfig {
        ring: 16,
        ..CacheConfig::default()
    };
    let (registry, caches) = cached_registry(store.clone(), config);
    assert!(caches.ready(cm_info(), DEADLINE).await.is_some());
    let written = fifty_configmaps(&store).await;
    let mut watch = cache_watch(&registry, written[0]).await;
    for want in &written[1..] {
        let d = tokio::time::timeout(DEADLINE, watch.next())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!(change(d).0, *want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_the_ring_dropped_is_gone_and_one_before_the_cache_reads_the_store() {
    let backend = Backend::local().await;
    let store = backend.store.clone();
    let config = CacheConfig {
        ring: 16,
        ring_max: 16,
        ..CacheConfig::default()
    };
    let (registry, caches) = cached_registry(store.clone(), config.clone());
    assert!(caches.ready(cm_info(), DEADLINE).await.is_some());
    let written = fifty_configmaps(&store).await;
    let opts = |rv: Revision| WatchOptions {
        resource_version: Some(rv.to_string()),
        ..Default::default()
    };
    let info = Arc::new(cm_info().clone());
    let feed = registry
        .watch_feed(info.clone(), Some("w"), opts(written[0]))
        .await
        .expect("a watch answers");
    let WatchFeed::TooOld(mut rx) = feed else {
        panic!("a start the ring dropped: {}", feed.source());
    };
    let ev = rx.recv().await.expect("one event");
    assert_eq!(ev.kind, "ERROR");
    assert_eq!(ev.object["code"], 410, "{}", ev.object);
    let message = ev.object["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("too old resource version: "),
        "{message}"
    );
    assert!(rx.recv().await.is_none(), "the watch ends after the error");
    // a new cache (a restarted server) has dropped nothing: history before
    // it is the store's, and the watch replays it
    let (fresh, fresh_caches) = cached_registry(store.clone(), config);
    assert!(fresh_caches.ready(cm_info(), DEADLINE).await.is_some());
    let feed = fresh
        .watch_feed(info, Some("w"), opts(written[0]))
        .await
        .expect("a watch answers");
    let WatchFeed::Store(mut rx) = feed else {
        panic!("a start before the cache: {}", feed.source());
    };
    let ev = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("in time")
        .expect("an event");
    assert_eq!(ev.kind, "ADDED");
    assert_eq!(
        ev.object["metadata"]["resourceVersion"],
        written[1].to_string()
    );
}

fn pod_on(name: &str, node: &str) -> Vec<u8> {
    objects::encode(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "a"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}))
    .expect("encode")
}

/// Creates `n` pods on node n2 named `{prefix}{i}`.
async fn pods_on_n2(store: &Arc<dyn Store>, prefix: &str, n: usize) {
    for i in 0..n {
        let name = format!("{prefix}{i}");
        store
            .create(&format!("pods/a/{name}"), pod_on(&name, "n2"))
            .await
            .expect("create on n2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_of_one_nodes_pods_is_fed_only_that_nodes_changes() {
    let backend = Backend::local().await;
    let store = backend.store.clone();
    // a watcher fed every change would fall behind these buffers and be closed
    let config = CacheConfig {
        ring: 16,
        ring_max: 16,
        watcher_buffer: 8,
        indexed_buffer: 8,
        ..CacheConfig::default()
    };
    let (registry, caches) = cached_registry(store.clone(), config);
    assert!(caches.ready(pod_info(), DEADLINE).await.is_some());
    let selectors = Selectors {
        labels: LabelSelector::parse("").expect("labels"),
        fields: FieldSelector::parse("spec.nodeName=n1", pod_info()).expect("fields"),
    };
    let now = store.current_revision().await.expect("revision");
    let feed = registry
        .watch_feed(
            Arc::new(pod_info().clone()),
            None,
            WatchOptions {
                selectors,
                resource_version: Some(now.to_string()),
                ..Default::default()
            },
        )
        .await
        .expect("watch");
    let WatchFeed::Cache(mut watch) = feed else {
        panic!("served by {}", feed.source());
    };
    pods_on_n2(&store, "other", 100).await;
    let mut want = Vec::new();
    let kv = store
        .create("pods/a/mine", pod_on("mine", "n1"))
        .await
        .expect("create on n1");
    want.push((kv.mod_revision, "ADDED"));
    let moved = store
        .get("pods/a/other7")
        .await
        .expect("get")
        .expect("exists");
    let kv = store
        .update("pods/a/other7", pod_on("other7", "n1"), moved.mod_revision)
        .await
        .expect("move to n1");
    want.push((kv.mod_revision, "ADDED"));
    let kv = store
        .update("pods/a/other7", pod_on("other7", "n2"), kv.mod_revision)
        .await
        .expect("move back");
    want.push((kv.mod_revision, "DELETED"));
    let d = store.delete("pods/a/mine", None).await.expect("delete");
    want.push((d.revision, "DELETED"));
    pods_on_n2(&store, "late", 50).await;
    let mut seen = Vec::new();
    while seen.len() < want.len() {
        let d = tokio::time::timeout(DEADLINE, watch.next())
            .await
            .expect("in time")
            .expect("the watcher of n1 stays open: n2's changes are not its");
        seen.push(change(d));
    }
    assert_eq!(seen, want);
}

const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.cache.example.com
spec:
  group: cache.example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

#[test]
fn a_custom_resources_cache_goes_with_its_definition() {
    let c = Cluster::start();
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(WIDGETS));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let caches = c.app().registry.caches().expect("the cache is on").clone();
    let prefix = "cache.example.com/widgets/";
    c.wait_for("the widgets list to be served", DEADLINE, || {
        c.kubectl(&["get", "widgets"]).status.success() && caches.state_of(prefix) == Some(true)
    });
    let o = c.kubectl_in(
        &["apply", "-f", "-"],
        Some("apiVersion: cache.example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    c.wait_for("the cache to hold the widget", DEADLINE, || {
        caches.stats(prefix).is_some_and(|s| s.objects == 1)
    });
    c.ok(&["delete", "crd", "widgets.cache.example.com"]);
    c.wait_for("the widgets cache to go", DEADLINE, || {
        caches.state_of(prefix).is_none()
    });
    // the built-in caches stay
    c.ok(&["get", "configmaps", "-A"]);
    c.wait_for("the configmaps cache", DEADLINE, || {
        c.kubectl(&["get", "configmaps", "-A"]).status.success()
            && caches.state_of("configmaps/") == Some(true)
    });
}
