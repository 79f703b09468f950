//! Lists and gets served from a resource's cache, with kube's
//! `resourceVersion` rules: unset is a consistent read (the store's current
//! revision, waited for), `0` whatever the cache holds, `N` (NotOlderThan)
//! at least N, `Exact` and continue tokens a kept snapshot at that revision.
//! `Ok(None)` means "read the store instead" (the cache is not ready, the
//! revision is not reachable in time or not kept, or the request is one the
//! store path answers with an error).

use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use schemas::KindInfo;

use crate::errors::{ApiError, ApiResult};
use crate::objects;
use crate::registry::{ListOptions, ListPage, decode_continue, encode_continue};
use crate::store::Revision;

use super::resource::{Objects, ResourceCache};
use super::{Caches, object::CachedObject};

/// The objects to list from and the revision they are at, per the
/// request's `resourceVersion`, continue token and match rule.
async fn objects_for(
    caches: &Caches,
    cache: &ResourceCache,
    prefix: &str,
    opts: &ListOptions,
) -> ApiResult<Option<(Objects, Revision, Option<String>)>> {
    if let Some(token) = &opts.continue_token {
        let Ok((rv, start)) = decode_continue(token) else {
            return Ok(None);
        };
        if !start.starts_with(prefix) {
            return Ok(None);
        }
        return Ok(cache
            .at(rv, caches.revision())
            .map(|objects| (objects, rv, Some(start))));
    }
    let rv = opts.resource_version.as_deref().filter(|r| !r.is_empty());
    let wanted = match (rv, opts.resource_version_match.as_deref()) {
        (Some(rv), Some("Exact")) => {
            let Ok(rv) = objects::parse_rv(rv) else {
                return Ok(None);
            };
            return Ok(cache
                .at(rv, caches.revision())
                .map(|objects| (objects, rv, None)));
        }
        (Some("0"), Some("NotOlderThan") | None) => 0,
        (Some(rv), Some("NotOlderThan") | None) => {
            let Ok(rv) = objects::parse_rv(rv) else {
                return Ok(None);
            };
            if rv > caches.revision() {
                // the store path answers versions from the future (504)
                let current = caches.store().current_revision().await?;
                if rv > current {
                    return Ok(None);
                }
            }
            rv
        }
        (None, _) => caches.store().current_revision().await?,
        (Some(_), Some(_)) => return Ok(None),
    };
    if caches.revision() < wanted && !caches.wait_for(wanted, caches.config().wait).await {
        tracing::debug!(
            wanted,
            "the watch cache did not reach the revision in time; reading the store"
        );
        return Ok(None);
    }
    let (objects, revision) = cache.current(caches.revision());
    Ok(Some((objects, revision, None)))
}

/// A list from the cache, or `None` to read the store.
pub async fn list(
    caches: &Caches,
    info: &KindInfo,
    namespace: Option<&str>,
    opts: &ListOptions,
) -> ApiResult<Option<ListPage>> {
    let Some(cache) = caches.resource(info).await else {
        return Ok(None);
    };
    let prefix = objects::prefix(info, namespace);
    let Some((objects, revision, start_after)) = objects_for(caches, &cache, &prefix, opts).await?
    else {
        return Ok(None);
    };
    let limit = opts.limit.filter(|l| *l > 0);
    let raw = opts.raw && objects::served_as_stored(info);
    let fields = cache.fields();
    let lower = match &start_after {
        Some(s) => Bound::Excluded(s.as_str()),
        None => Bound::Included(prefix.as_str()),
    };
    let mut range = objects
        .range::<_, str>((lower, Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(&prefix));
    let mut page = ListPage {
        resource_version: revision,
        ..Default::default()
    };
    let mut taken = 0usize;
    let mut last: Option<Arc<str>> = None;
    for (key, o) in range.by_ref() {
        if !o.matches(info, &opts.selectors, fields) {
            continue;
        }
        push(&mut page, info, o, raw)?;
        taken += 1;
        if limit.is_some_and(|l| taken >= l) {
            last = Some(key.clone());
            break;
        }
    }
    if let Some(last) = last {
        let selective = !opts.selectors.labels.is_empty() || !opts.selectors.fields.is_empty();
        // without selectors every key is an item: the previous page's count
        // of what followed it, minus this page, is what follows this one
        let rest = if selective {
            usize::from(range.next().is_some())
        } else {
            match opts.continue_token.as_deref().and_then(remaining_hint) {
                Some(before) => before.saturating_sub(taken),
                None => range.count(),
            }
        };
        if rest > 0 {
            page.continue_token = Some(if selective {
                encode_continue(revision, &last)
            } else {
                with_remaining(revision, &last, rest)
            });
            if !selective {
                page.remaining_item_count = Some(i64::try_from(rest).unwrap_or(i64::MAX));
            }
            cache.keep_snapshot(revision, &objects);
        }
    }
    Ok(Some(page))
}

/// A continue token that also carries how many keys follow its start (the
/// store path ignores the extra field; tokens stay interchangeable).
fn with_remaining(rv: Revision, start: &str, remaining: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        serde_json::json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start, "rem": remaining})
            .to_string(),
    )
}

/// How many keys followed a continue token's start, if the cache wrote it.
fn remaining_hint(token: &str) -> Option<usize> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    usize::try_from(v.get("rem")?.as_u64()?).ok()
}

fn push(page: &mut ListPage, info: &KindInfo, o: &CachedObject, raw: bool) -> ApiResult<()> {
    if raw {
        page.raw_items.push(o.bytes.clone());
    } else {
        page.items.push(o.served(info)?);
    }
    Ok(())
}

/// A get at `resourceVersion=0` from the cache (NotFound if the cache
/// lacks it), or `None` when the cache is not ready.
pub async fn get(
    caches: &Caches,
    info: &KindInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Option<Value>> {
    let Some(cache) = caches.resource(info).await else {
        return Ok(None);
    };
    let key = objects::key(info, namespace, name);
    let (objects, _) = cache.current(caches.revision());
    match objects.get(key.as_str()) {
        Some(o) => o.served(info).map(Some),
        None => Err(ApiError::not_found(info, name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_with_a_count_stay_store_tokens() {
        let token = with_remaining(42, "pods/default/web", 17);
        assert_eq!(remaining_hint(&token), Some(17));
        assert_eq!(
            decode_continue(&token).expect("the store path reads it"),
            (42, "pods/default/web".to_string())
        );
        assert_eq!(remaining_hint(&encode_continue(42, "pods/x")), None);
        assert_eq!(remaining_hint("garbage"), None);
    }
}
