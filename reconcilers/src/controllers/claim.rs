//! Claiming children, as Kubernetes' controller-ref manager does: a
//! controller owns the objects that name it as controller and match its
//! selector, adopts matching orphans, and releases owned objects that stopped
//! matching.

use std::sync::Arc;

use serde_json::{Value, json};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemas::MetaExt;
use schemas::Object;
use schemas::SelectorExt;

use crate::controllers::podutil::{controller_of, controller_ref};
use crate::runtime::{Api, ClientError, Patch, WriteParams};

/// The children of `owner` among the objects of its namespace in `cache`
/// (see [`candidates`]), after adopting and releasing as needed.
pub async fn claim<P: Object, C: Object>(
    owner: &P,
    selector: &LabelSelector,
    cache: &crate::runtime::Cache<C>,
    api: &Api<C>,
    manager: &str,
) -> Result<Vec<Arc<C>>, ClientError> {
    claim_filtered(owner, selector, |_| true, cache, api, manager).await
}

/// [`claim`], the adoption patch also adding `finalizer` (kube's ref
/// manager given finalizers: the Job controller's tracking finalizer, so an
/// adopted pod is tracked like one the Job made). The adopted children are
/// returned as the patch left them, finalizer included.
pub async fn claim_adding_finalizer<P: Object, C: Object>(
    owner: &P,
    selector: &LabelSelector,
    finalizer: &str,
    cache: &crate::runtime::Cache<C>,
    api: &Api<C>,
    manager: &str,
) -> Result<Vec<Arc<C>>, ClientError> {
    claim_with(
        owner,
        selector,
        |_| true,
        Some(finalizer),
        cache,
        api,
        manager,
    )
    .await
}

/// [`claim`], where an object must also pass `filter` to match (the
/// StatefulSet controller's: its pods are named after it).
pub async fn claim_filtered<P: Object, C: Object>(
    owner: &P,
    selector: &LabelSelector,
    filter: impl Fn(&C) -> bool,
    cache: &crate::runtime::Cache<C>,
    api: &Api<C>,
    manager: &str,
) -> Result<Vec<Arc<C>>, ClientError> {
    claim_with(owner, selector, filter, None, cache, api, manager).await
}

async fn claim_with<P: Object, C: Object>(
    owner: &P,
    selector: &LabelSelector,
    filter: impl Fn(&C) -> bool,
    adopt_finalizer: Option<&str>,
    cache: &crate::runtime::Cache<C>,
    api: &Api<C>,
    manager: &str,
) -> Result<Vec<Arc<C>>, ClientError> {
    let uid = owner.metadata().uid.clone().unwrap_or_default();
    let candidates = candidates(cache, owner.metadata().namespace_str(), &uid, selector);
    let deleting = owner.metadata().deletion_timestamp.is_some();
    let wp = WriteParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    let mut owned = Vec::new();
    for c in candidates {
        let m = c.metadata();
        let matches = !selector.is_empty() && selector.matches(m.labels_map()) && filter(&c);
        match controller_of(m) {
            Some(r) if r.uid == uid => {
                if matches || deleting {
                    owned.push(c);
                } else {
                    let keep: Vec<_> = m
                        .owner_references
                        .iter()
                        .flatten()
                        .filter(|r| r.uid != uid)
                        .cloned()
                        .collect();
                    let refs = if keep.is_empty() {
                        Value::Null
                    } else {
                        json!(keep)
                    };
                    tracing::info!(
                        kind = C::KIND,
                        name = m.name_str(),
                        owner = owner.metadata().name_str(),
                        "releasing: no longer matches the selector"
                    );
                    let patch =
                        Patch::Merge(json!({"metadata": {"ownerReferences": refs, "uid": m.uid}}));
                    ignore_gone(api.patch(m.name_str(), &patch, &wp).await)?;
                }
            }
            None if matches && !deleting && m.deletion_timestamp.is_none() => {
                let mut refs = m.owner_references.clone().unwrap_or_default();
                refs.push(controller_ref(owner));
                tracing::info!(
                    kind = C::KIND,
                    name = m.name_str(),
                    owner = owner.metadata().name_str(),
                    "adopting"
                );
                let patch = match adopt_finalizer {
                    None => {
                        Patch::Merge(json!({"metadata": {"ownerReferences": refs, "uid": m.uid}}))
                    }
                    // strategic: owner references merge by uid and finalizers
                    // are a set, so a concurrent change to either is kept
                    Some(f) => Patch::Strategic(json!({"metadata": {
                        "ownerReferences": [controller_ref(owner)], "uid": m.uid,
                        "finalizers": [f]}})),
                };
                if let Some(adopted) = ignore_gone(api.patch(m.name_str(), &patch, &wp).await)? {
                    owned.push(Arc::new(adopted));
                }
            }
            _ => {}
        }
    }
    Ok(owned)
}

/// The owners in `owners` that may adopt `child`: none when it has a
/// controller already, else those of its namespace whose (non-empty)
/// `selector` matches its labels. Controllers watch their children with it.
pub fn adopters<P: Object, C: Object>(
    owners: &crate::runtime::Cache<P>,
    child: &C,
    selector: impl Fn(&P) -> Option<LabelSelector>,
) -> Vec<crate::runtime::ObjectRef> {
    let m = child.metadata();
    if controller_of(m).is_some() {
        return Vec::new();
    }
    owners
        .in_namespace(m.namespace_str())
        .iter()
        .filter(|o| selector(o).is_some_and(|s| !s.is_empty() && s.matches(m.labels_map())))
        .map(|o| crate::runtime::ObjectRef::of(o.as_ref()))
        .collect()
}

/// `None` for a 404 or 409 (the object went or changed), the result otherwise.
pub fn ignore_gone<T>(r: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The objects worth examining for `owner`'s claim: those it already owns,
/// and those carrying one of its selector's labels (found through the cache's
/// indexes, so a claim does not scan a whole namespace); without
/// `matchLabels`, everything in the namespace.
fn candidates<C: Object>(
    cache: &crate::runtime::Cache<C>,
    namespace: &str,
    owner_uid: &str,
    selector: &LabelSelector,
) -> Vec<Arc<C>> {
    let in_ns = |c: &Arc<C>| c.metadata().namespace_str() == namespace;
    let mut out: Vec<Arc<C>> = cache
        .owned_by(owner_uid)
        .into_iter()
        .filter(in_ns)
        .collect();
    match selector.match_labels.as_ref().and_then(|m| m.iter().next()) {
        Some((k, v)) => out.extend(cache.with_label(k, v).into_iter().filter(in_ns)),
        None => out.extend(cache.in_namespace(namespace)),
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| {
        seen.insert(
            c.metadata()
                .uid
                .clone()
                .unwrap_or_else(|| c.metadata().name_str().to_string()),
        )
    });
    out
}
