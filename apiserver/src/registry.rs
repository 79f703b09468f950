//! The object lifecycle over the store, as Kubernetes' generic registry does
//! it: get, paginated list at one revision, create, optimistic update and
//! read-modify-write, graceful and finalizer-aware delete, dry runs, and the
//! watch with selector-aware ADDED/MODIFIED/DELETED translation.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use schemas::KindInfo;

use crate::admission;
use crate::errors::{ApiError, ApiResult};
use crate::ipam::{Ipam, IpamConfig};
use crate::objects::{self, meta_mut};
use crate::selectors::Selectors;
use crate::store::{
    EventType, KeyValue, ListRequest, Revision, Store, StoreError, WatchItem, WatchStream,
};

/// How many times a read-modify-write retries on a conflicting concurrent write.
const MAX_RETRIES: usize = 32;
/// Page size of store reads behind a selective list.
const STORE_PAGE: usize = 500;

/// The generic registry over one store.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    ipam: Ipam,
    kinds: Arc<schemas::Registry>,
    service_account_admission: bool,
    cache: Option<crate::cache::Caches>,
}

/// The admission plugins `--disable-admission-plugins` can turn off.
pub const DISABLEABLE_ADMISSION_PLUGINS: &[&str] = &["ServiceAccount"];

/// Options of a list.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Label and field selectors.
    pub selectors: Selectors,
    /// Page size.
    pub limit: Option<usize>,
    /// Continue token from a previous page.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` (`Exact` or `NotOlderThan`).
    pub resource_version_match: Option<String>,
    /// Return stored JSON as is (`ListPage::raw_items`) when no selector needs
    /// the objects decoded.
    pub raw: bool,
}

impl ListOptions {
    /// A list of what the watch cache holds now (`resourceVersion=0`, no
    /// wait for the latest revision): how admission reads the objects it
    /// consults, as kube's admission plugins read their informers.
    pub fn cached() -> Self {
        ListOptions {
            resource_version: Some("0".into()),
            ..Default::default()
        }
    }
}

/// A page of objects.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    /// The objects, in key order.
    pub items: Vec<Value>,
    /// The objects as JSON bytes, when `ListOptions::raw` allowed it.
    pub raw_items: Vec<bytes::Bytes>,
    /// The revision read at.
    pub resource_version: Revision,
    /// Token for the next page.
    pub continue_token: Option<String>,
    /// How many objects the following pages hold (set, as kube-apiserver
    /// does, only for a paginated list without selectors).
    pub remaining_item_count: Option<i64>,
}

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run admission, store nothing.
    pub dry_run: bool,
    /// `fieldValidation`, and where warnings go.
    pub directives: admission::Directives,
    /// The admission webhooks that may apply (see [`admission::webhooks`]).
    pub webhooks: Option<Arc<admission::webhooks::Calls>>,
}

/// Options of a delete (from the query and the `DeleteOptions` body).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// Seconds of grace; `Some(0)` deletes at once.
    pub grace_period_seconds: Option<i64>,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    /// Required uid.
    pub precondition_uid: Option<String>,
    /// Required resourceVersion.
    pub precondition_resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// The validating admission webhooks that may apply.
    pub webhooks: Option<Arc<admission::webhooks::Calls>>,
    /// Where their warnings go.
    pub warnings: admission::Warnings,
}

/// The outcome of a delete.
#[derive(Clone, Debug)]
pub enum DeleteOutcome {
    /// The object is gone; this is what it was.
    Deleted(Value),
    /// Deletion is pending (finalizers or a grace period); this is the object now.
    Pending(Value),
}

/// One watch event as the API returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub kind: &'static str,
    /// The object (a `Status` for `ERROR`).
    pub object: Value,
}

pub(crate) fn encode_continue(rv: Revision, start: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

pub(crate) fn decode_continue(token: &str) -> ApiResult<(Revision, String)> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, start.to_string()))
}

fn expired_continue() -> ApiError {
    ApiError::gone(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    )
}

impl Registry {
    /// A registry over `store`, allocating addresses from the default ranges.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_ipam(store.clone(), IpamConfig::default())
    }

    /// A registry over `store` with these address ranges.
    pub fn with_ipam(store: Arc<dyn Store>, config: IpamConfig) -> Self {
        Registry {
            ipam: Ipam::new(store.clone(), config),
            store,
            kinds: Arc::new(schemas::Registry::builtin()),
            service_account_admission: true,
            cache: None,
        }
    }

    /// Serves lists, gets at `resourceVersion=0` and watches from a watch
    /// cache (see [`crate::cache`]); kube-apiserver's `--watch-cache`.
    pub fn enable_watch_cache(&mut self, config: crate::cache::CacheConfig) {
        self.cache = Some(crate::cache::Caches::new(self.store.clone(), config));
    }

    /// The watch caches, when enabled.
    pub fn caches(&self) -> Option<&crate::cache::Caches> {
        self.cache.as_ref()
    }

    /// Turns admission plugins off by kube-apiserver's names
    /// (`--disable-admission-plugins`; see [`DISABLEABLE_ADMISSION_PLUGINS`]).
    pub fn disable_admission_plugins(&mut self, names: &[String]) -> Result<(), String> {
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            match name {
                "ServiceAccount" => self.service_account_admission = false,
                other => {
                    return Err(format!(
                        "admission plugin {other:?} cannot be disabled; korral can disable: {}",
                        DISABLEABLE_ADMISSION_PLUGINS.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// The kinds served: built-in ones and those of established CustomResourceDefinitions.
    pub fn kinds(&self) -> &Arc<schemas::Registry> {
        &self.kinds
    }

    /// The address allocator.
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn get_kv(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<KeyValue> {
        self.store
            .get(&objects::key(info, namespace, name))
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))
    }

    /// Reads one object.
    pub async fn get(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        objects::decode_for(info, &self.get_kv(info, namespace, name).await?)
    }

    /// Reads one object from the watch cache (a get at `resourceVersion=0`),
    /// or from the store when the cache is not ready or lacks it (a miss may
    /// be an object created a moment ago).
    pub async fn get_cached(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        if let Some(caches) = &self.cache {
            match crate::cache::list::get(caches, info, namespace, name).await {
                Ok(Some(obj)) => return Ok(obj),
                // not there yet (created a moment ago) or not ready: the
                // store, as kube's admission looks up what its informer lacks
                Ok(None) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        self.get(info, namespace, name).await
    }

    /// Lists objects (all namespaces when `namespace` is `None`): from the
    /// watch cache when it can answer, else from the store.
    pub async fn list(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListPage> {
        if let Some(caches) = &self.cache
            && let Some(page) = crate::cache::list::list(caches, info, namespace, opts).await?
        {
            return Ok(page);
        }
        self.list_from_store(info, namespace, opts).await
    }

    /// Lists objects from the store (at one revision, paginated).
    pub async fn list_from_store(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListPage> {
        let prefix = objects::prefix(info, namespace);
        let (mut revision, mut start_after) = match &opts.continue_token {
            Some(t) => {
                let (rv, start) = decode_continue(t)?;
                if !start.starts_with(&prefix) {
                    return Err(ApiError::bad_request(
                        "the continue token does not belong to this list",
                    ));
                }
                (Some(rv), Some(start))
            }
            None => (None, None),
        };
        if revision.is_none()
            && let Some(rv) = opts.resource_version.as_deref().filter(|r| !r.is_empty())
        {
            let rv = objects::parse_rv(rv)?;
            match opts.resource_version_match.as_deref() {
                Some("Exact") => revision = Some(rv),
                Some("NotOlderThan") | None => {
                    let current = self.store.current_revision().await?;
                    if rv > current {
                        return Err(ApiError::timeout(format!(
                            "Too large resource version: {rv}, current: {current}"
                        )));
                    }
                }
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                    )));
                }
            }
        }
        let raw = opts.raw
            && objects::served_as_stored(info)
            && opts.selectors.labels.is_empty()
            && opts.selectors.fields.is_empty();
        let mut raw_items = Vec::new();
        let mut items = Vec::new();
        let limit = opts.limit.filter(|l| *l > 0);
        let mut read_revision;
        let mut more;
        loop {
            let page = self
                .store
                .list(ListRequest {
                    prefix: prefix.clone(),
                    revision,
                    limit: Some(limit.map_or(STORE_PAGE, |l| l.clamp(1, STORE_PAGE * 10))),
                    start_after: start_after.clone(),
                })
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if opts.continue_token.is_some() => {
                        expired_continue()
                    }
                    other => ApiError::from(other),
                })?;
            read_revision = page.revision;
            revision = Some(page.revision);
            more = page.more;
            let mut last_key = None;
            for kv in &page.kvs {
                last_key = Some(kv.key.clone());
                if raw {
                    raw_items.push(objects::with_resource_version(kv)?.into());
                    if limit.is_some_and(|l| raw_items.len() >= l) {
                        break;
                    }
                    continue;
                }
                let obj = objects::decode_for(info, kv)?;
                if opts.selectors.matches(&obj) {
                    items.push(obj);
                    if limit.is_some_and(|l| items.len() >= l) {
                        break;
                    }
                }
            }
            let page_exhausted = last_key.as_ref() == page.kvs.last().map(|kv| &kv.key);
            if !page_exhausted {
                more = true;
            }
            start_after = last_key.or(start_after);
            if !more || limit.is_some_and(|l| items.len() + raw_items.len() >= l) {
                break;
            }
        }
        let continue_token = match (&start_after, more, limit) {
            (Some(start), true, Some(_)) => Some(encode_continue(read_revision, start)),
            _ => None,
        };
        let remaining_item_count = if continue_token.is_some()
            && opts.selectors.labels.is_empty()
            && opts.selectors.fields.is_empty()
        {
            let rest = ListRequest {
                prefix: prefix.clone(),
                revision: Some(read_revision),
                limit: None,
                start_after,
            };
            Some(i64::try_from(self.store.count(rest).await?).unwrap_or(i64::MAX))
        } else {
            None
        };
        Ok(ListPage {
            items,
            raw_items,
            resource_version: read_revision,
            continue_token,
            remaining_item_count,
        })
    }

    async fn check_namespace(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<()> {
        let Some(ns) = namespace.filter(|_| info.namespaced) else {
            return Ok(());
        };
        let ns_info =
            schemas::lookup("v1", "Namespace").map_err(|e| ApiError::internal(e.to_string()))?;
        // the cache's view, else the store's (kube's NamespaceLifecycle
        // reads its informer and looks up a namespace it does not know)
        match self.get_cached(ns_info, None, ns).await {
            Err(e) if e.code == 404 => Err(ApiError::not_found(ns_info, ns)),
            Err(e) => Err(e),
            Ok(obj) => {
                if objects::is_deleting(&obj) {
                    Err(ApiError::forbidden_message(format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        crate::errors::qualified_resource(info),
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Creates an object from a request body; `mutate` runs after server-set
    /// fields and defaulting (managed fields, allocations) and before the write.
    pub async fn create(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
        mutate: impl FnOnce(&mut Value) -> ApiResult<()>,
    ) -> ApiResult<Value> {
        crate::crds::refuse_create(info)?;
        let mut obj = admission::admit_create(info, obj, namespace, &opts.directives)?;
        let name = objects::name(&obj).to_string();
        if name.is_empty() {
            return Err(ApiError::invalid(
                info,
                "",
                &[schemas::FieldError::required(
                    schemas::FieldPath::fields("metadata.name"),
                    "name or generateName is required",
                )],
            ));
        }
        self.check_namespace(info, objects::namespace(&obj), &name)
            .await?;
        if info.is("", "Pod") {
            if self.service_account_admission {
                admission::service_account::admit_pod(self, &mut obj).await?;
            }
            admission::priority::admit_pod(self, &mut obj).await?;
        }
        if info.is("", "PersistentVolumeClaim") {
            admission::storage_class::admit_claim(self, &mut obj).await?;
        }
        if info.is("networking.k8s.io", "Ingress") {
            admission::ingress_class::admit_ingress(self, &mut obj).await?;
        }
        if info.is("", "PersistentVolumeClaim") || info.is("", "PersistentVolume") {
            admission::storage_protection::admit(&info.kind, &mut obj);
        }
        obj = self.call_mutating_webhooks(info, obj, None, opts).await?;
        mutate(&mut obj)?;
        if let Some(calls) = &opts.webhooks {
            calls
                .validate(self, Some(&obj), None, &opts.directives.warnings)
                .await?;
        }
        if opts.dry_run {
            if self
                .store
                .get(&objects::key(info, objects::namespace(&obj), &name))
                .await?
                .is_some()
            {
                return Err(ApiError::already_exists(info, &name));
            }
            return Ok(obj);
        }
        let key = objects::key(info, objects::namespace(&obj), &name);
        // the store's create refuses an existing key; read first only where
        // allocations would otherwise be taken for nothing
        if self.ipam.allocates(info) && self.store.get(&key).await?.is_some() {
            return Err(ApiError::already_exists(info, &name));
        }
        let taken = self.ipam.allocate(info, &mut obj, None).await?;
        match self
            .store
            .create(&key, objects::encode_for(info, &obj)?)
            .await
        {
            Ok(kv) => objects::as_written(info, obj, &kv),
            Err(e) => {
                self.ipam.release_keys(&taken).await;
                Err(ApiError::from_store(info, &name, e))
            }
        }
    }

    /// The mutating admission webhooks on an object admission made (`old`
    /// for an update); what they changed is admitted again (unknown fields
    /// dropped, defaults, validation), as kube decodes and validates a
    /// patched object.
    async fn call_mutating_webhooks(
        &self,
        info: &KindInfo,
        obj: Value,
        old: Option<&Value>,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let Some(calls) = opts.webhooks.as_ref().filter(|c| c.has_mutating()) else {
            return Ok(obj);
        };
        let mutated = calls
            .mutate(self, obj.clone(), old, &opts.directives.warnings)
            .await?;
        if mutated == obj {
            return Ok(obj);
        }
        admission::after_webhooks(info, mutated, old, &opts.directives)
    }

    /// Replaces an object (PUT). A `resourceVersion` in the body must match.
    #[allow(clippy::too_many_arguments)]
    pub async fn update(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        new: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
        mutate: impl Fn(&Value, &mut Value) -> ApiResult<()>,
    ) -> ApiResult<Value> {
        let precondition = objects::meta_str(&new, "resourceVersion").map(str::to_string);
        self.update_with(
            info,
            namespace,
            name,
            subresource,
            opts,
            precondition.as_deref(),
            |_| Ok(new.clone()),
            mutate,
        )
        .await
    }

    /// Read-modify-write: `change` computes the new object from the current
    /// one; retried on concurrent writes unless `precondition` pins a resourceVersion.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_with(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        opts: &WriteOptions,
        precondition: Option<&str>,
        change: impl Fn(&Value) -> ApiResult<Value>,
        mutate: impl Fn(&Value, &mut Value) -> ApiResult<()>,
    ) -> ApiResult<Value> {
        let key = objects::key(info, namespace, name);
        for _ in 0..MAX_RETRIES {
            let kv = self.get_kv(info, namespace, name).await?;
            if let Some(rv) = precondition.filter(|r| !r.is_empty())
                && objects::parse_rv(rv)? != kv.mod_revision
            {
                return Err(ApiError::conflict(info, name));
            }
            let old = objects::decode_for(info, &kv)?;
            let new = change(&old)?;
            // a resourceVersion the change set (a PUT body, or a patch that
            // names one) must be the current one, as in Kubernetes
            if let Some(rv) = objects::meta_str(&new, "resourceVersion").filter(|r| !r.is_empty())
                && objects::parse_rv(rv)? != kv.mod_revision
            {
                return Err(ApiError::conflict(info, name));
            }
            let new = admission::admit_update(info, &old, new, subresource, &opts.directives)?;
            if subresource.is_none() && info.is("", "PersistentVolumeClaim") {
                admission::claim_resize::admit_update(self, &old, &new).await?;
            }
            let mut new = self
                .call_mutating_webhooks(info, new, Some(&old), opts)
                .await?;
            mutate(&old, &mut new)?;
            meta_mut(&mut new).insert(
                "resourceVersion".into(),
                Value::String(kv.mod_revision.to_string()),
            );
            if let Some(calls) = &opts.webhooks {
                calls
                    .validate(self, Some(&new), Some(&old), &opts.directives.warnings)
                    .await?;
            }
            if new == old {
                return Ok(old);
            }
            if opts.dry_run {
                return Ok(new);
            }
            if finalization_complete(info, &new) {
                return match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok(_) => Ok(new),
                    Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
                    Err(e) => Err(ApiError::from_store(info, name, e)),
                };
            }
            match self
                .store
                .update(&key, objects::encode_for(info, &new)?, kv.mod_revision)
                .await
            {
                Ok(kv) => return objects::as_written(info, new, &kv),
                Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(info, name, e)),
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// kube's `GuaranteedUpdate` for a server-made change that is not a
    /// client's update (a pod's binding): `change` of the stored object
    /// written with compare-and-swap, retried on conflict — no admission,
    /// no managed fields, as kube-apiserver's binding storage writes.
    /// `change` edits the object in place and says whether it changed
    /// anything (an unchanged object is not written).
    pub async fn guaranteed_update(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
        change: impl Fn(&mut Value) -> ApiResult<bool>,
    ) -> ApiResult<Value> {
        let key = objects::key(info, namespace, name);
        for _ in 0..MAX_RETRIES {
            let kv = self.get_kv(info, namespace, name).await?;
            let mut new = objects::decode_for(info, &kv)?;
            if !change(&mut new)? || dry_run {
                return Ok(new);
            }
            match self
                .store
                .update(&key, objects::encode_for(info, &new)?, kv.mod_revision)
                .await
            {
                Ok(kv) => return objects::as_written(info, new, &kv),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(info, name, e)),
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// Deletes an object, honouring preconditions, finalizers, propagation
    /// policy and (for pods) graceful termination.
    pub async fn delete(
        &self,
        info: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<DeleteOutcome> {
        let key = objects::key(info, namespace, name);
        for _ in 0..MAX_RETRIES {
            let kv = self.get_kv(info, namespace, name).await?;
            let old = objects::decode_for(info, &kv)?;
            if let Some(uid) = opts.precondition_uid.as_deref()
                && uid != objects::uid(&old)
            {
                return Err(ApiError::conflict_because(
                    info,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        objects::uid(&old)
                    ),
                ));
            }
            if let Some(rv) = opts.precondition_resource_version.as_deref()
                && objects::parse_rv(rv)? != kv.mod_revision
            {
                return Err(ApiError::conflict_because(
                    info,
                    name,
                    &format!(
                        "Precondition failed: the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                        kv.mod_revision
                    ),
                ));
            }
            if let Some(calls) = &opts.webhooks {
                calls
                    .validate(self, None, Some(&old), &opts.warnings)
                    .await?;
            }
            let mut new = old.clone();
            let mut finalizers = objects::finalizers(&old);
            match opts.propagation_policy.as_deref() {
                Some("Orphan") => add_unique(&mut finalizers, "orphan"),
                Some("Foreground") => add_unique(&mut finalizers, "foregroundDeletion"),
                Some("Background") | None => {}
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "propagationPolicy: Unsupported value: {other:?}: supported values: \"Orphan\", \"Background\", \"Foreground\""
                    )));
                }
            }
            if crate::crds::is_crd(info) && !objects::is_deleting(&old) {
                crate::crds::mark_for_cleanup(&mut new, &mut finalizers);
            }
            objects::set_finalizers(&mut new, &finalizers);
            let grace = graceful_period(info, &old, opts.grace_period_seconds);
            let pending =
                !finalizers.is_empty() || namespace_finalizers_pending(info, &old) || grace > 0;
            if !pending {
                if opts.dry_run {
                    return Ok(DeleteOutcome::Deleted(old));
                }
                match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok(_) => {
                        self.ipam.release(info, &old, None).await;
                        let mut gone = old;
                        if info.is("", "Pod") {
                            // pods delete gracefully, with no grace left: the
                            // answer carries the deletion stamp
                            let before = gone.clone();
                            mark_deleting(info, &before, &mut gone, 0);
                        }
                        return Ok(DeleteOutcome::Deleted(gone));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(info, name, e)),
                }
            }
            mark_deleting(info, &old, &mut new, grace);
            if new == old {
                return Ok(DeleteOutcome::Pending(old));
            }
            if opts.dry_run {
                return Ok(DeleteOutcome::Pending(new));
            }
            match self
                .store
                .update(&key, objects::encode_for(info, &new)?, kv.mod_revision)
                .await
            {
                Ok(kv) => return Ok(DeleteOutcome::Pending(objects::decode_for(info, &kv)?)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(info, name, e)),
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// Watches objects for an HTTP client: from the watch cache when it can
    /// serve the requested start, else from the store.
    pub async fn watch_feed(
        &self,
        info: Arc<KindInfo>,
        namespace: Option<&str>,
        opts: WatchOptions,
    ) -> ApiResult<WatchFeed> {
        if let Some(caches) = &self.cache {
            match watch_from_cache(caches, &info, namespace, &opts).await? {
                FromCache::Watch(w) => return Ok(WatchFeed::Cache(w)),
                FromCache::Gone(e) => return Ok(WatchFeed::TooOld(error_feed(e).await)),
                FromCache::Store => {}
            }
        }
        Ok(WatchFeed::Store(self.watch(info, namespace, opts).await?))
    }

    /// Watches objects; see [`WatchOptions`].
    pub async fn watch(
        &self,
        info: Arc<KindInfo>,
        namespace: Option<&str>,
        opts: WatchOptions,
    ) -> ApiResult<tokio::sync::mpsc::Receiver<WatchEvent>> {
        let prefix = objects::prefix(&info, namespace);
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let rv = opts.resource_version.as_deref().filter(|r| !r.is_empty());
        // `sendInitialEvents` (the WatchList form) decides the initial
        // events itself; without it an unset or "0" version lists first
        let list_first = match opts.initial_events {
            Some(send) => send,
            None => matches!(rv, None | Some("0")),
        };
        let (initial, start) = match rv {
            _ if list_first => {
                let page = self
                    .list(
                        &info,
                        namespace,
                        &ListOptions {
                            selectors: opts.selectors.clone(),
                            ..Default::default()
                        },
                    )
                    .await?;
                (page.items, page.resource_version + 1)
            }
            None | Some("0") => (Vec::new(), self.store.current_revision().await? + 1),
            Some(rv) => (Vec::new(), objects::parse_rv(rv)? + 1),
        };
        // the WatchList form ends its initial events with a bookmark
        let end_bookmark =
            (opts.initial_events == Some(true) && opts.bookmarks).then(|| WatchEvent {
                kind: "BOOKMARK",
                object: json!({"kind": info.kind, "apiVersion": info.api_version, "metadata": {
                    "resourceVersion": (start - 1).to_string(),
                    "annotations": {INITIAL_EVENTS_END: "true"},
                }}),
            });
        let stream = match self.store.watch(&prefix, start).await {
            Ok(s) => s,
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => {
                return Ok(error_feed(ApiError::gone(format!(
                    "too old resource version: {} ({compacted})",
                    requested - 1
                )))
                .await);
            }
            Err(e) => return Err(e.into()),
        };
        tokio::spawn(pump_watch(info, stream, initial, end_bookmark, opts, tx));
        Ok(rx)
    }
}

/// Options of a watch.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// Label and field selectors.
    pub selectors: Selectors,
    /// Start after this revision; unset or "0" starts with the current objects as ADDED.
    pub resource_version: Option<String>,
    /// Send BOOKMARK events.
    pub bookmarks: bool,
    /// `sendInitialEvents`: `Some(true)` sends the current objects as ADDED
    /// and then (with bookmarks) a bookmark annotated
    /// [`INITIAL_EVENTS_END`]; `Some(false)` sends none; `None` is the
    /// legacy rule (initial objects only when no version is given, or "0").
    pub initial_events: Option<bool>,
}

/// Where a watch's events come from.
pub enum WatchFeed {
    /// A store watch, translated per watcher.
    Store(tokio::sync::mpsc::Receiver<WatchEvent>),
    /// The watch cache, events shared between watchers.
    Cache(Box<crate::cache::CacheWatch>),
    /// A start older than the watch cache's changes: one 410 `ERROR` event.
    TooOld(tokio::sync::mpsc::Receiver<WatchEvent>),
}

impl WatchFeed {
    /// What serves the watch, as `/metrics` names it.
    pub fn source(&self) -> &'static str {
        match self {
            WatchFeed::Store(_) => "store",
            WatchFeed::Cache(_) => "cache",
            WatchFeed::TooOld(_) => "too_old",
        }
    }
}

/// A watch whose only event is an error: once a watch request is parsed and
/// authorised, kube-apiserver reports a start it cannot serve (410 Gone) as
/// an `ERROR` event, not as the response's status.
async fn error_feed(e: ApiError) -> tokio::sync::mpsc::Receiver<WatchEvent> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let _ = tx
        .send(WatchEvent {
            kind: "ERROR",
            object: serde_json::to_value(e.status()).unwrap_or_default(),
        })
        .await;
    rx
}

/// What the watch cache makes of a watch request.
enum FromCache {
    /// It serves it.
    Watch(Box<crate::cache::CacheWatch>),
    /// The start is older than the changes it keeps, and they were dropped:
    /// 410 Gone, as kube's watch cache answers (the client relists).
    Gone(ApiError),
    /// The store must serve it (cache not ready, start before the cache
    /// was listed, revision not reached in time).
    Store,
}

/// Serves a watch from the cache when it can.
async fn watch_from_cache(
    caches: &crate::cache::Caches,
    info: &Arc<KindInfo>,
    namespace: Option<&str>,
    opts: &WatchOptions,
) -> ApiResult<FromCache> {
    let Some(cache) = caches.resource(info).await else {
        return Ok(FromCache::Store);
    };
    let rv = opts.resource_version.as_deref().filter(|r| !r.is_empty());
    let list_first = match opts.initial_events {
        Some(send) => send,
        None => matches!(rv, None | Some("0")),
    };
    let after = match rv {
        _ if list_first => {
            let wanted = match rv {
                None => caches.store().current_revision().await?,
                Some(rv) => objects::parse_rv(rv)?,
            };
            if caches.revision() < wanted && !caches.wait_for(wanted, caches.config().wait).await {
                return Ok(FromCache::Store);
            }
            None
        }
        None | Some("0") => None,
        Some(rv) => Some(objects::parse_rv(rv)?),
    };
    let trigger = cache.trigger(&opts.selectors);
    let Some(sub) = cache.subscribe(after, caches.revision(), trigger.as_ref()) else {
        if let Some(after) = after
            && let Some(oldest) = cache.too_old(after)
        {
            return Ok(FromCache::Gone(ApiError::gone(format!(
                "too old resource version: {after} ({oldest})"
            ))));
        }
        return Ok(FromCache::Store);
    };
    let start = crate::cache::watcher::WatchStart {
        info: info.clone(),
        prefix: objects::prefix(info, namespace),
        selectors: opts.selectors.clone(),
        initial: list_first,
        end_bookmark: opts.initial_events == Some(true) && opts.bookmarks,
        bookmarks: opts.bookmarks.then_some(caches.config().bookmark_interval),
    };
    Ok(FromCache::Watch(Box::new(crate::cache::CacheWatch::new(
        cache.clone(),
        start,
        sub,
        trigger,
        caches.revisions(),
    ))))
}

/// The annotation of the bookmark that ends a WatchList's initial events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

async fn pump_watch(
    info: Arc<KindInfo>,
    mut stream: WatchStream,
    initial: Vec<Value>,
    end_bookmark: Option<WatchEvent>,
    opts: WatchOptions,
    tx: tokio::sync::mpsc::Sender<WatchEvent>,
) {
    let initial = initial.into_iter().map(|object| WatchEvent {
        kind: "ADDED",
        object,
    });
    for event in initial.chain(end_bookmark) {
        if tx.send(event).await.is_err() {
            return;
        }
    }
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(WatchItem::Event(e)) => translate_event(&info, &e, &opts.selectors),
            Ok(WatchItem::Progress(rev)) if opts.bookmarks => Some(WatchEvent {
                kind: "BOOKMARK",
                object: json!({"kind": info.kind, "apiVersion": info.api_version, "metadata": {"resourceVersion": rev.to_string()}}),
            }),
            Ok(WatchItem::Progress(_)) => None,
            Err(e) => {
                let status = ApiError::from(e).status();
                let _ = tx
                    .send(WatchEvent {
                        kind: "ERROR",
                        object: serde_json::to_value(status).unwrap_or_default(),
                    })
                    .await;
                return;
            }
        };
        if let Some(ev) = event
            && tx.send(ev).await.is_err()
        {
            return;
        }
    }
}

fn translate_event(
    info: &KindInfo,
    e: &crate::store::Event,
    selectors: &Selectors,
) -> Option<WatchEvent> {
    let prev = e
        .prev
        .as_ref()
        .and_then(|kv| objects::decode_for(info, kv).ok());
    match e.kind {
        EventType::Deleted => {
            let mut obj = prev?;
            if !selectors.matches(&obj) {
                return None;
            }
            meta_mut(&mut obj).insert(
                "resourceVersion".into(),
                Value::String(e.revision().to_string()),
            );
            Some(WatchEvent {
                kind: "DELETED",
                object: obj,
            })
        }
        EventType::Added | EventType::Modified => {
            let obj = objects::decode_for(info, &e.kv).ok()?;
            let now = selectors.matches(&obj);
            let before = prev.as_ref().is_some_and(|p| selectors.matches(p));
            let kind = match (before, now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            };
            Some(WatchEvent { kind, object: obj })
        }
    }
}

fn add_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|f| f == item) {
        list.push(item.to_string());
    }
}

fn namespace_finalizers_pending(info: &KindInfo, obj: &Value) -> bool {
    info.kind == "Namespace"
        && info.group.is_empty()
        && obj
            .get("spec")
            .and_then(|s| s.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

/// The grace period a delete gets: pods bound to a node and not finished get
/// theirs (the request's, else `terminationGracePeriodSeconds`); everything else 0.
fn graceful_period(info: &KindInfo, obj: &Value, requested: Option<i64>) -> i64 {
    if !(info.group.is_empty() && info.kind == "Pod") {
        return 0;
    }
    let bound = obj
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = obj
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bound || matches!(phase, "Succeeded" | "Failed") {
        return 0;
    }
    let default = obj
        .get("spec")
        .and_then(|s| s.get("terminationGracePeriodSeconds"))
        .and_then(Value::as_i64)
        .unwrap_or(30);
    let grace = requested.unwrap_or(default).max(0);
    // a pod already being deleted keeps the shorter of the two periods
    match obj
        .get("metadata")
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(Value::as_i64)
    {
        Some(existing) => grace.min(existing),
        None => grace,
    }
}

/// Sets deletionTimestamp/deletionGracePeriodSeconds (and the Terminating
/// phase of a namespace) on an object whose deletion must wait.
fn mark_deleting(info: &KindInfo, old: &Value, new: &mut Value, grace: i64) {
    let already = objects::is_deleting(old);
    let old_grace = old
        .get("metadata")
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(Value::as_i64);
    let meta = meta_mut(new);
    if !already || old_grace.is_some_and(|g| grace < g) {
        let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
        meta.insert(
            "deletionTimestamp".into(),
            Value::String(schemas::time::TimeExt::text(&schemas::time::from_utc(at))),
        );
        meta.insert("deletionGracePeriodSeconds".into(), Value::from(grace));
        if meta.get("generation").is_some() {
            let g = meta.get("generation").and_then(Value::as_i64).unwrap_or(1) + 1;
            meta.insert("generation".into(), Value::from(g));
        }
    }
    if info.kind == "Namespace"
        && info.group.is_empty()
        && let Value::Object(root) = new
    {
        let status = root.entry("status").or_insert_with(|| json!({}));
        if let Value::Object(s) = status {
            s.insert("phase".into(), Value::String("Terminating".into()));
        }
    }
}

/// Whether an object being deleted has nothing left holding it.
fn finalization_complete(info: &KindInfo, obj: &Value) -> bool {
    if !objects::is_deleting(obj)
        || !objects::finalizers(obj).is_empty()
        || namespace_finalizers_pending(info, obj)
    {
        return false;
    }
    // a pod in its grace period is removed by the node (or a grace-0 delete), not by an update
    let grace = obj
        .get("metadata")
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    grace == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "pods/default/web");
        assert_eq!(
            decode_continue(&t).expect("decode"),
            (42, "pods/default/web".to_string())
        );
        assert_eq!(
            decode_continue("not a token").expect_err("garbage").code,
            400
        );
    }

    #[test]
    fn grace_applies_to_bound_running_pods_only() {
        let pod = schemas::lookup("v1", "Pod").expect("pod");
        let cm = schemas::lookup("v1", "ConfigMap").expect("cm");
        let bound = json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 10}, "status": {"phase": "Running"}});
        assert_eq!(graceful_period(pod, &bound, None), 10);
        assert_eq!(graceful_period(pod, &bound, Some(0)), 0);
        assert_eq!(graceful_period(pod, &json!({"spec": {}}), None), 0);
        assert_eq!(graceful_period(cm, &bound, Some(5)), 0);
    }

    #[test]
    fn selector_changes_become_added_and_deleted() {
        let sel = Selectors {
            labels: crate::selectors::LabelSelector::parse("app=web").expect("selector"),
            ..Default::default()
        };
        let kv = |labels: Value, rev| KeyValue {
            key: "pods/default/p".into(),
            value: serde_json::to_vec(&json!({"metadata": {"name": "p", "labels": labels}}))
                .expect("json"),
            create_revision: 1,
            mod_revision: rev,
            version: 1,
        };
        let moved_out = crate::store::Event {
            kind: EventType::Modified,
            kv: kv(json!({"app": "db"}), 3),
            prev: Some(kv(json!({"app": "web"}), 2)),
        };
        assert_eq!(
            translate_event(schemas::lookup("v1", "Pod").expect("pod"), &moved_out, &sel)
                .map(|e| e.kind),
            Some("DELETED")
        );
        let moved_in = crate::store::Event {
            kind: EventType::Modified,
            kv: kv(json!({"app": "web"}), 4),
            prev: Some(kv(json!({"app": "db"}), 3)),
        };
        assert_eq!(
            translate_event(schemas::lookup("v1", "Pod").expect("pod"), &moved_in, &sel)
                .map(|e| e.kind),
            Some("ADDED")
        );
    }
}
