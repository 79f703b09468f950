//! The reflector cache: a shared, read-only (to readers), indexed copy of one
//! kind's objects, kept current from a watcher's events, swapped atomically on
//! relist, and able to tell when it has synced.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use schemas::MetaExt;
use schemas::Object;

/// A reference to an object: namespace (if namespaced) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The namespace, `None` when cluster-scoped.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectRef {
    /// A reference.
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_string),
            name: name.to_string(),
        }
    }

    /// The reference of an object.
    pub fn of<K: Object>(obj: &K) -> Self {
        let m = obj.metadata();
        ObjectRef::new(
            m.namespace.as_deref().filter(|_| K::NAMESPACED),
            m.name_str(),
        )
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Computes the values an object is indexed under.
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

struct Inner<K> {
    objects: HashMap<ObjectRef, Arc<K>>,
    indexes: HashMap<&'static str, HashMap<String, BTreeSet<ObjectRef>>>,
}

/// The built-in indexes.
pub const BY_NAMESPACE: &str = "namespace";
/// Index by owner uid (every owner reference).
pub const BY_OWNER: &str = "owner";
/// Index by `key=value` label pairs.
pub const BY_LABEL: &str = "label";
/// Index by the object's own uid.
pub const BY_UID: &str = "uid";

/// A read handle on the cache (cheap to clone).
pub struct Cache<K> {
    inner: Arc<RwLock<Inner<K>>>,
    index_fns: Arc<Vec<(&'static str, IndexFn<K>)>>,
    synced: watch::Receiver<bool>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            index_fns: self.index_fns.clone(),
            synced: self.synced.clone(),
        }
    }
}

/// The write handle, owned by the reflector.
pub struct Writer<K> {
    cache: Cache<K>,
    synced: watch::Sender<bool>,
}

fn default_indexes<K: Object>() -> Vec<(&'static str, IndexFn<K>)> {
    vec![
        (
            BY_NAMESPACE,
            Arc::new(|k: &K| k.metadata().namespace.clone().into_iter().collect()),
        ),
        (
            BY_OWNER,
            Arc::new(|k: &K| {
                k.metadata()
                    .owner_references
                    .iter()
                    .flatten()
                    .map(|o| o.uid.clone())
                    .collect()
            }),
        ),
        (
            BY_LABEL,
            Arc::new(|k: &K| {
                k.metadata()
                    .labels_map()
                    .iter()
                    .map(|(a, b)| format!("{a}={b}"))
                    .collect()
            }),
        ),
        (
            BY_UID,
            Arc::new(|k: &K| k.metadata().uid.clone().into_iter().collect()),
        ),
    ]
}

/// A new cache with the built-in indexes plus `extra` ones (e.g. pods by node).
pub fn new_cache<K: Object>(extra: Vec<(&'static str, IndexFn<K>)>) -> (Cache<K>, Writer<K>) {
    let mut fns = default_indexes::<K>();
    fns.extend(extra);
    let (tx, rx) = watch::channel(false);
    let cache = Cache {
        inner: Arc::new(RwLock::new(Inner {
            objects: HashMap::new(),
            indexes: HashMap::new(),
        })),
        index_fns: Arc::new(fns),
        synced: rx,
    };
    (cache.clone(), Writer { cache, synced: tx })
}

impl<K: Object> Inner<K> {
    fn index(&mut self, fns: &[(&'static str, IndexFn<K>)], r: &ObjectRef, obj: &K) {
        for (name, f) in fns {
            let idx = self.indexes.entry(name).or_default();
            for value in f(obj) {
                idx.entry(value).or_default().insert(r.clone());
            }
        }
    }

    fn unindex(&mut self, fns: &[(&'static str, IndexFn<K>)], r: &ObjectRef, obj: &K) {
        for (name, f) in fns {
            if let Some(idx) = self.indexes.get_mut(name) {
                for value in f(obj) {
                    if let Some(set) = idx.get_mut(&value) {
                        set.remove(r);
                        if set.is_empty() {
                            idx.remove(&value);
                        }
                    }
                }
            }
        }
    }
}

impl<K: Object> Writer<K> {
    /// Replaces everything with `objs` (a relist) and marks the cache synced.
    pub fn restart(&mut self, objs: Vec<K>) {
        let fns = self.cache.index_fns.clone();
        let mut fresh = Inner {
            objects: HashMap::with_capacity(objs.len()),
            indexes: HashMap::new(),
        };
        for o in objs {
            let r = ObjectRef::of(&o);
            fresh.index(&fns, &r, &o);
            fresh.objects.insert(r, Arc::new(o));
        }
        if let Ok(mut g) = self.cache.inner.write() {
            *g = fresh;
        }
        let _ = self.synced.send(true);
    }

    /// Stores a created or changed object (shared, not copied) and returns
    /// the one it replaces.
    pub fn put(&mut self, o: Arc<K>) -> Option<Arc<K>> {
        let fns = self.cache.index_fns.clone();
        let r = ObjectRef::of(o.as_ref());
        let mut g = self.cache.inner.write().ok()?;
        let old = g.objects.remove(&r);
        if let Some(old) = &old {
            g.unindex(&fns, &r, old);
        }
        g.index(&fns, &r, &o);
        g.objects.insert(r, o);
        old
    }

    /// Removes a deleted object.
    pub fn remove(&mut self, o: &K) {
        let fns = self.cache.index_fns.clone();
        let r = ObjectRef::of(o);
        if let Ok(mut g) = self.cache.inner.write()
            && let Some(old) = g.objects.remove(&r)
        {
            g.unindex(&fns, &r, &old);
        }
    }

    /// The read handle.
    pub fn cache(&self) -> Cache<K> {
        self.cache.clone()
    }
}

impl<K: Object> Cache<K> {
    /// One object.
    pub fn get(&self, r: &ObjectRef) -> Option<Arc<K>> {
        self.inner.read().ok()?.objects.get(r).cloned()
    }

    /// Every object.
    pub fn all(&self) -> Vec<Arc<K>> {
        self.inner
            .read()
            .map(|g| g.objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.inner.read().map(|g| g.objects.len()).unwrap_or(0)
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Objects under `value` in index `index`.
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Arc<K>> {
        let Ok(g) = self.inner.read() else {
            return Vec::new();
        };
        g.indexes
            .get(index)
            .and_then(|idx| idx.get(value))
            .map(|set| {
                set.iter()
                    .filter_map(|r| g.objects.get(r).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Objects in a namespace.
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        self.by_index(BY_NAMESPACE, ns)
    }

    /// Objects that name `uid` as an owner.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<K>> {
        self.by_index(BY_OWNER, uid)
    }

    /// The object with this uid.
    pub fn by_uid(&self, uid: &str) -> Option<Arc<K>> {
        self.by_index(BY_UID, uid).into_iter().next()
    }

    /// Objects with label `key=value`.
    pub fn with_label(&self, key: &str, value: &str) -> Vec<Arc<K>> {
        self.by_index(BY_LABEL, &format!("{key}={value}"))
    }

    /// Whether the first list has been applied.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first list has been applied.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(ns: &str, name: &str, node: &str, owner: &str, app: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name, "labels": {"app": app},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner}]},
            "spec": {"nodeName": node, "containers": []}
        }))
        .expect("pod")
    }

    fn node_index() -> Vec<(&'static str, IndexFn<Pod>)> {
        vec![(
            "node",
            Arc::new(|p: &Pod| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .into_iter()
                    .collect()
            }),
        )]
    }

    #[tokio::test]
    async fn indexes_follow_updates_deletes_and_relists() {
        let (cache, mut w) = new_cache::<Pod>(node_index());
        assert!(!cache.is_synced());
        w.restart(vec![
            pod("a", "p1", "n1", "u1", "web"),
            pod("b", "p2", "n2", "u1", "db"),
        ]);
        cache.wait_synced().await;
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.in_namespace("a").len(), 1);
        assert_eq!(cache.owned_by("u1").len(), 2);
        assert_eq!(cache.by_index("node", "n1").len(), 1);
        // moving p1 to n2 updates the node index
        w.put(Arc::new(pod("a", "p1", "n2", "u1", "web")));
        assert_eq!(cache.by_index("node", "n1").len(), 0);
        assert_eq!(cache.by_index("node", "n2").len(), 2);
        assert_eq!(cache.with_label("app", "web").len(), 1);
        w.remove(&pod("b", "p2", "n2", "u1", "db"));
        assert_eq!(cache.owned_by("u1").len(), 1);
        assert!(cache.get(&ObjectRef::new(Some("b"), "p2")).is_none());
        // a relist replaces everything at once
        w.restart(vec![pod("c", "p3", "n3", "u2", "web")]);
        assert_eq!(cache.len(), 1);
        assert!(cache.by_index("node", "n2").is_empty());
        assert_eq!(cache.owned_by("u2").len(), 1);
    }
}
