//! Reading what a source has in the cluster: every object carrying its
//! label (one paged list per kind, custom kinds included: a kind the
//! cluster does not serve yet has no objects), and, where asked, the
//! objects it declares that exist without the label (adopted or relabelled
//! by hand).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use serde_json::Value;

use reconcilers::runtime::{Client, ClientError};
use schemas::KindInfo;
use schemas::korral::InventoryEntry;

use crate::object::ObjectKey;
use crate::owner::Owner;
use crate::render::Desired;

/// Live objects by key.
pub type LiveObjects = HashMap<ObjectKey, Value>;

/// How many requests run at once.
pub const CONCURRENCY: usize = 16;

/// Above this many unlabelled objects of one kind, list the kind instead of
/// reading them one by one.
const LIST_INSTEAD_OF_GETS: usize = 32;

/// The kinds to look at: those the source declares and those it owned before.
pub fn kinds_of(desired: &Desired, inventory: &[InventoryEntry]) -> Vec<Arc<KindInfo>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let all = desired.objects.iter().map(|o| o.info.clone()).chain(
        inventory
            .iter()
            .filter_map(|e| ObjectKey::from_entry(e, &desired.kinds).map(|(i, _)| i)),
    );
    for info in all {
        if seen.insert((info.group.clone(), info.kind.clone())) {
            out.push(info);
        }
    }
    out
}

/// Lists a kind's objects matching `selector`; a custom kind the cluster
/// does not serve (its definition not applied yet, or gone) has none.
async fn list_kind(
    client: &Client,
    info: &KindInfo,
    selector: Option<&str>,
) -> Result<Vec<Value>, ClientError> {
    match client.dynamic(info, None).list_selected(selector).await {
        Err(e) if e.is_not_found() && !info.is_builtin() => Ok(Vec::new()),
        other => other,
    }
}

/// Reads the objects `owner` has in the cluster. With `unlabelled`, also
/// finds declared objects that exist without the owner's label.
pub async fn read(
    client: &Client,
    owner: &Owner,
    desired: &Desired,
    inventory: &[InventoryEntry],
    unlabelled: bool,
) -> Result<LiveObjects, ClientError> {
    let selector = owner.selector();
    let kinds = kinds_of(desired, inventory);
    let futures: Vec<_> = kinds
        .iter()
        .map(|info| {
            let selector = selector.clone();
            async move {
                list_kind(client, info, Some(&selector))
                    .await
                    .map(|items| (info, items))
            }
        })
        .collect();
    let lists = stream::iter(futures)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut live = LiveObjects::new();
    for r in lists {
        let (info, items) = r?;
        for obj in items {
            if owner.owns(&obj) {
                live.insert(ObjectKey::of(info, &obj), obj);
            }
        }
    }
    if !unlabelled {
        return Ok(live);
    }
    let absent: Vec<_> = desired
        .objects
        .iter()
        .filter(|o| !live.contains_key(&o.key))
        .collect();
    let mut by_kind: HashMap<(&str, &str), Vec<_>> = HashMap::new();
    for o in &absent {
        by_kind
            .entry((o.info.group.as_str(), o.info.kind.as_str()))
            .or_default()
            .push(*o);
    }
    for objs in by_kind.values() {
        let info = &objs[0].info;
        if objs.len() > LIST_INSTEAD_OF_GETS {
            let wanted: BTreeSet<&ObjectKey> = objs.iter().map(|o| &o.key).collect();
            for obj in list_kind(client, info, None).await? {
                let key = ObjectKey::of(info, &obj);
                if wanted.contains(&key) {
                    live.insert(key, obj);
                }
            }
            continue;
        }
        let futures: Vec<_> = objs
            .iter()
            .map(|o| {
                let api = client.dynamic(info, o.key.namespace.as_deref());
                let key = o.key.clone();
                async move { api.get_opt(&key.name).await.map(|v| (key, v)) }
            })
            .collect();
        let found = stream::iter(futures)
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for r in found {
            if let (key, Some(obj)) = r? {
                live.insert(key, obj);
            }
        }
    }
    Ok(live)
}
