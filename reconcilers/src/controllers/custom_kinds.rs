//! The kinds the cluster serves beyond the built-in ones, for controllers
//! that handle every kind (the namespace controller, the garbage collector):
//! one per served version of each Established CustomResourceDefinition.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemas::KindInfo;

use crate::runtime::{Client, ClientError, ListParams};

/// Whether a definition's kinds are served (`Established=True`).
fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Established" && c.status == "True")
}

/// Every served version of every established definition's kind.
pub async fn served(client: &Client) -> Result<Vec<Arc<KindInfo>>, ClientError> {
    let crds = client
        .api::<CustomResourceDefinition>(None)
        .list_all(&ListParams::default())
        .await?;
    Ok(crds
        .items
        .iter()
        .filter(|c| established(c))
        .flat_map(schemas::crd::kinds_of)
        .collect())
}

/// Each custom kind once, at the version its objects are stored at.
pub async fn stored(client: &Client) -> Result<Vec<Arc<KindInfo>>, ClientError> {
    Ok(served(client)
        .await?
        .into_iter()
        .filter(|k| k.api_version == k.storage_version)
        .collect())
}

/// The served kind of `api_version`/`kind`: built-in, else custom; `None`
/// when the cluster does not serve it.
pub async fn resolve(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> Result<Option<Arc<KindInfo>>, ClientError> {
    if let Ok(info) = schemas::lookup(api_version, kind) {
        return Ok(schemas::builtin_kinds()
            .iter()
            .find(|k| std::ptr::eq(k.as_ref(), info))
            .cloned());
    }
    Ok(served(client)
        .await?
        .into_iter()
        .find(|k| k.api_version == api_version && k.kind == kind))
}
