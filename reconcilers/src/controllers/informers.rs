//! Shared informers: each kind is watched once per process, started on first
//! use, and shared by every controller that asks for it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use schemas::Object;

use crate::runtime::cache::IndexFn;
use crate::runtime::watcher::Config;
use crate::runtime::{Client, Informer};

/// The pods-by-node index name.
pub const PODS_BY_NODE: &str = "node";

/// Stops one informer.
type Stopper = Box<dyn Fn() + Send + Sync>;

/// The process's informers.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    started: Arc<Mutex<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>>,
    stoppers: Arc<Mutex<Vec<Stopper>>>,
}

impl Informers {
    /// No informers yet.
    pub fn new(client: Client) -> Self {
        Informers {
            client,
            started: Arc::new(Mutex::new(HashMap::new())),
            stoppers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The informer of kind `K` (all namespaces), started on first use.
    pub fn get<K: Object>(&self) -> Informer<K> {
        // pods always carry the by-node index, whoever asks first
        if K::URL_PATH_SEGMENT == "pods" && K::GROUP.is_empty() {
            let any: Box<dyn Any> = Box::new(self.pods());
            if let Ok(informer) = any.downcast::<Informer<K>>() {
                return *informer;
            }
        }
        let extra: Vec<(&'static str, IndexFn<K>)> = Vec::new();
        self.get_with(extra)
    }

    fn get_with<K: Object>(&self, indexes: Vec<(&'static str, IndexFn<K>)>) -> Informer<K> {
        let Ok(mut started) = self.started.lock() else {
            // a poisoned lock means a panic elsewhere: start a private informer
            return Informer::start(self.client.api::<K>(None), Config::default(), indexes);
        };
        let key = K::URL_PATH_SEGMENT;
        if let Some(existing) = started
            .get(key)
            .and_then(|a| a.clone().downcast::<Informer<K>>().ok())
        {
            return (*existing).clone();
        }
        let informer = Informer::start(self.client.api::<K>(None), Config::default(), indexes);
        started.insert(key, Arc::new(informer.clone()));
        let stop = informer.clone();
        if let Ok(mut s) = self.stoppers.lock() {
            s.push(Box::new(move || stop.stop()));
        }
        informer
    }

    /// A private informer of the `K` objects a field selector picks (a
    /// controller that needs a few objects of a large kind: one ConfigMap
    /// name, one Secret type), stopped with the shared ones.
    pub fn selected<K: Object>(&self, field_selector: &str) -> Informer<K> {
        let config = Config {
            field_selector: Some(field_selector.to_string()),
            ..Default::default()
        };
        let informer = Informer::start(self.client.api::<K>(None), config, Vec::new());
        let stop = informer.clone();
        if let Ok(mut s) = self.stoppers.lock() {
            s.push(Box::new(move || stop.stop()));
        }
        informer
    }

    /// Stops every informer started so far.
    pub fn stop(&self) {
        if let Ok(mut s) = self.stoppers.lock() {
            for stop in s.drain(..) {
                stop();
            }
        }
    }

    /// The pod informer, indexed by node as well.
    pub fn pods(&self) -> Informer<Pod> {
        let by_node: IndexFn<Pod> = Arc::new(|p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
                .into_iter()
                .collect()
        });
        self.get_with(vec![(PODS_BY_NODE, by_node)])
    }
}
