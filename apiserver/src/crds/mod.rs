//! The apiextensions controllers kube-apiserver runs in-process: serve the
//! kinds CustomResourceDefinitions define, keep each definition's accepted
//! names and `NamesAccepted`/`Established` conditions, and delete a deleted
//! definition's objects before the definition goes.
//!
//! Every API server runs one [`CrdController`]; it registers kinds in its
//! own [`schemas::Registry`], so servers sharing an etcd all serve the same
//! kinds, and status writes are idempotent.

pub mod cleanup;
pub mod conditions;
pub mod names;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use schemas::KindInfo;

use crate::errors::{ApiError, ApiResult};
use crate::objects;
use crate::registry::{ListOptions, Registry, WatchOptions, WriteOptions};

/// The finalizer a definition's first DELETE adds; removed once its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The verbs a terminating definition's kinds keep (no create).
const TERMINATING_VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "watch",
    "patch",
    "update",
];

/// The kind of CustomResourceDefinitions.
pub fn crd_kind(registry: &Registry) -> ApiResult<Arc<KindInfo>> {
    registry
        .kinds()
        .lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Whether `info` is the CustomResourceDefinition kind.
pub fn is_crd(info: &KindInfo) -> bool {
    info.is("apiextensions.k8s.io", "CustomResourceDefinition")
}

/// What the first DELETE of a definition does instead of deleting it: adds
/// the cleanup finalizer and says so in a `Terminating` condition.
pub fn mark_for_cleanup(obj: &mut Value, finalizers: &mut Vec<String>) {
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        finalizers.push(CLEANUP_FINALIZER.to_string());
    }
    let Ok(mut crd) = serde_json::from_value::<CustomResourceDefinition>(obj.clone()) else {
        return;
    };
    conditions::set(
        &mut crd,
        conditions::TERMINATING,
        true,
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    );
    if let (Some(status), Value::Object(root)) = (crd.status, obj)
        && let Ok(v) = serde_json::to_value(status)
    {
        root.insert("status".into(), v);
    }
}

/// The error a create of a terminating definition's kind gets.
pub fn refuse_create(info: &KindInfo) -> ApiResult<()> {
    if info.custom().is_some() && !info.verbs.contains(&"create") {
        return Err(ApiError::method_not_allowed_message(
            "create not allowed while custom resource definition is terminating",
        ));
    }
    Ok(())
}

/// The in-process CustomResourceDefinition controller of one API server.
pub struct CrdController {
    registry: Registry,
    /// The definitions, by name, as last seen.
    cache: BTreeMap<String, CustomResourceDefinition>,
    /// What each registered definition was registered from.
    registered: HashMap<String, String>,
    /// Definitions whose cleanup runs (by uid).
    cleaning: Arc<std::sync::Mutex<HashSet<String>>>,
}

impl CrdController {
    /// Lists the definitions and registers their kinds, so that a restarted
    /// server serves them before it takes requests; then keeps them current
    /// in a background task.
    pub async fn start(registry: Registry) -> ApiResult<tokio::task::JoinHandle<()>> {
        let mut controller = CrdController {
            registry,
            cache: BTreeMap::new(),
            registered: HashMap::new(),
            cleaning: Arc::default(),
        };
        let revision = controller.relist().await?;
        Ok(tokio::spawn(controller.run(revision)))
    }

    /// Reads every definition and syncs them all; returns the revision read at.
    async fn relist(&mut self) -> ApiResult<i64> {
        let info = crd_kind(&self.registry)?;
        let page = self
            .registry
            .list(&info, None, &ListOptions::default())
            .await?;
        self.cache.clear();
        for item in page.items {
            match serde_json::from_value::<CustomResourceDefinition>(item) {
                Ok(crd) => {
                    let name = crd.metadata.name.clone().unwrap_or_default();
                    self.cache.insert(name, crd);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a stored CustomResourceDefinition does not decode")
                }
            }
        }
        let gone: Vec<String> = self
            .registered
            .keys()
            .filter(|n| !self.cache.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.unregister(&name);
        }
        let names: Vec<String> = self.cache.keys().cloned().collect();
        for name in names {
            self.sync(&name).await;
        }
        Ok(page.resource_version)
    }

    async fn run(mut self, mut revision: i64) {
        let mut failures = 0u32;
        loop {
            match self.watch_from(revision).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e.message, "the CustomResourceDefinition watch failed");
                }
            }
            // back off on repeated failures, then start over from a fresh list
            tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(25)))).await;
            match self.relist().await {
                Ok(rv) => revision = rv,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e.message, "cannot list CustomResourceDefinitions");
                }
            }
        }
    }

    /// Follows definition changes until the watch ends.
    async fn watch_from(&mut self, revision: i64) -> ApiResult<()> {
        let info = crd_kind(&self.registry)?;
        let opts = WatchOptions {
            resource_version: Some(revision.to_string()),
            ..Default::default()
        };
        let mut rx = self.registry.watch(info, None, opts).await?;
        while let Some(event) = rx.recv().await {
            if event.kind == "ERROR" {
                return Err(ApiError::internal(event.object.to_string()));
            }
            let name = objects::name(&event.object).to_string();
            let group = event
                .object
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if event.kind == "DELETED" {
                self.cache.remove(&name);
                self.unregister(&name);
            } else {
                match serde_json::from_value::<CustomResourceDefinition>(event.object) {
                    Ok(crd) => {
                        self.cache.insert(name.clone(), crd);
                        self.sync(&name).await;
                    }
                    Err(e) => {
                        tracing::warn!(crd = %name, error = %e, "a CustomResourceDefinition does not decode")
                    }
                }
            }
            // a name freed or taken in the group may change the others' verdicts
            let peers: Vec<String> = self
                .cache
                .iter()
                .filter(|(n, c)| **n != name && c.spec.group == group)
                .map(|(n, _)| n.clone())
                .collect();
            for peer in peers {
                self.sync(&peer).await;
            }
        }
        Ok(())
    }

    fn unregister(&mut self, name: &str) {
        if self.registered.remove(name).is_some() {
            self.registry.kinds().set_custom(name, Vec::new());
            tracing::info!(
                crd = name,
                "stopped serving the kinds of a deleted CustomResourceDefinition"
            );
        }
    }

    /// Brings one definition's status and served kinds up to date.
    async fn sync(&mut self, name: &str) {
        let Some(crd) = self.cache.get(name).cloned() else {
            return;
        };
        let deleting = crd.metadata.deletion_timestamp.is_some();
        let current = if deleting {
            crd
        } else {
            // serve the kinds before the status says Established, so that a
            // client waiting for the condition finds them served
            let others: Vec<&CustomResourceDefinition> = self
                .cache
                .values()
                .filter(|c| c.metadata.name.as_deref() != Some(name))
                .collect();
            let desired = desired_status(&crd, &others);
            if conditions::is_true(&desired, conditions::ESTABLISHED) {
                self.register(name, &desired, false);
            }
            match self.write_status(name, &crd).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(crd = name, error = %e.message, "cannot update a CustomResourceDefinition's status");
                    crd
                }
            }
        };
        if conditions::is_true(&current, conditions::ESTABLISHED) {
            self.register(name, &current, deleting);
        } else {
            self.unregister(name);
        }
        if deleting
            && current
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == CLEANUP_FINALIZER)
        {
            self.start_cleanup(&current);
        }
    }

    /// Writes the names verdict and conditions when they changed; returns
    /// the definition as it now is.
    async fn write_status(
        &self,
        name: &str,
        crd: &CustomResourceDefinition,
    ) -> ApiResult<CustomResourceDefinition> {
        let others: Vec<&CustomResourceDefinition> = self
            .cache
            .values()
            .filter(|c| c.metadata.name.as_deref() != Some(name))
            .collect();
        let desired = desired_status(crd, &others);
        if desired.status == crd.status {
            return Ok(crd.clone());
        }
        let info = crd_kind(&self.registry)?;
        let change = |old: &Value| -> ApiResult<Value> {
            let live: CustomResourceDefinition = serde_json::from_value(old.clone())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let updated = desired_status(&live, &others);
            let mut new = old.clone();
            if let (Value::Object(root), Some(status)) = (&mut new, updated.status) {
                root.insert(
                    "status".into(),
                    serde_json::to_value(status).map_err(|e| ApiError::internal(e.to_string()))?,
                );
            }
            Ok(new)
        };
        let written = self
            .registry
            .update_with(
                &info,
                None,
                name,
                Some("status"),
                &WriteOptions::default(),
                None,
                change,
                |_, _| Ok(()),
            )
            .await?;
        serde_json::from_value(written).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// Serves the kinds of an established definition under its accepted names.
    fn register(&mut self, name: &str, crd: &CustomResourceDefinition, terminating: bool) {
        let mut served = crd.clone();
        if let Some(accepted) = crd.status.as_ref().and_then(|s| s.accepted_names.clone()) {
            served.spec.names = accepted;
        }
        let key = serde_json::to_string(&(&served.spec, terminating)).unwrap_or_default();
        if self.registered.get(name) == Some(&key) {
            return;
        }
        let kinds = schemas::crd::kinds_of(&served)
            .into_iter()
            .map(|k| {
                if terminating {
                    let mut k = (*k).clone();
                    k.verbs.retain(|v| TERMINATING_VERBS.contains(v));
                    Arc::new(k)
                } else {
                    k
                }
            })
            .collect();
        self.registry.kinds().set_custom(name, kinds);
        self.registered.insert(name.to_string(), key);
        tracing::info!(
            crd = name,
            terminating,
            "serving the kinds of a CustomResourceDefinition"
        );
    }

    fn start_cleanup(&self, crd: &CustomResourceDefinition) {
        let uid = crd.metadata.uid.clone().unwrap_or_default();
        {
            let mut cleaning = self
                .cleaning
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !cleaning.insert(uid.clone()) {
                return;
            }
        }
        let registry = self.registry.clone();
        let cleaning = self.cleaning.clone();
        let crd = crd.clone();
        tokio::spawn(async move {
            let name = crd.metadata.name.clone().unwrap_or_default();
            if let Err(e) = cleanup::run(&registry, &crd).await {
                tracing::warn!(crd = %name, error = %e.message, "cleaning up a deleted CustomResourceDefinition failed; retried on its next change");
            }
            cleaning
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&uid);
        });
    }
}

/// `crd` with the status the naming and establishing controllers give it.
pub fn desired_status(
    crd: &CustomResourceDefinition,
    others: &[&CustomResourceDefinition],
) -> CustomResourceDefinition {
    let verdict = names::accept_names(crd, others);
    let mut new = crd.clone();
    new.status
        .get_or_insert_with(Default::default)
        .accepted_names = Some(verdict.accepted);
    match &verdict.conflict {
        None => conditions::set(
            &mut new,
            conditions::NAMES_ACCEPTED,
            true,
            "NoConflicts",
            "no conflicts found",
        ),
        Some((reason, message)) => {
            conditions::set(&mut new, conditions::NAMES_ACCEPTED, false, reason, message)
        }
    }
    if !conditions::is_true(&new, conditions::ESTABLISHED) {
        if verdict.conflict.is_none() {
            conditions::set(
                &mut new,
                conditions::ESTABLISHED,
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
            );
        } else if !conditions::has(&new, conditions::ESTABLISHED) {
            conditions::set(
                &mut new,
                conditions::ESTABLISHED,
                false,
                "NotAccepted",
                "not all names are accepted",
            );
        }
    }
    new
}
