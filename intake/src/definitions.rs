//! CustomResourceDefinitions in a cluster: read them into a kinds registry
//! (so a render validates custom resources whose definitions were installed
//! separately, and finds the kinds of inventory entries), and wait until the
//! ones a sync applied are `Established` and their kinds served.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tokio::time::Instant;

use reconcilers::runtime::{Client, ClientError, ListParams, WatchEvent};
use schemas::{MetaExt, Registry};

/// How long a sync waits for the definitions it applied to be established.
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Registers the kinds of `crds` in `registry` (definitions being deleted
/// excepted); returns how many were registered.
pub fn register(registry: &Registry, crds: &[CustomResourceDefinition]) -> usize {
    let mut n = 0;
    for crd in crds {
        if crd.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let kinds = schemas::crd::kinds_of(crd);
        if !kinds.is_empty() {
            registry.set_custom(crd.metadata.name_str(), kinds);
            n += 1;
        }
    }
    n
}

/// The cluster's CustomResourceDefinitions.
pub async fn list(client: &Client) -> Result<Vec<CustomResourceDefinition>, ClientError> {
    Ok(client
        .api::<CustomResourceDefinition>(None)
        .list_all(&ListParams::default())
        .await?
        .items)
}

/// The built-in kinds plus those of the cluster's CustomResourceDefinitions.
pub async fn cluster_registry(client: &Client) -> Result<Registry, ClientError> {
    let registry = Registry::builtin();
    register(&registry, &list(client).await?);
    Ok(registry)
}

/// The status of condition `type_` (`"True"`, `"False"`, ...) and its message.
fn condition<'a>(crd: &'a CustomResourceDefinition, type_: &str) -> Option<(&'a str, &'a str)> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.message.as_deref().unwrap_or("")))
}

/// Where a definition stands: `Ok(true)` established, `Ok(false)` not yet,
/// `Err` never will be as it is (its names are refused).
fn verdict(crd: &CustomResourceDefinition) -> Result<bool, String> {
    if let Some(("False", message)) = condition(crd, "NamesAccepted") {
        return Err(format!(
            "is not established: its names are not accepted: {message}"
        ));
    }
    Ok(condition(crd, "Established").is_some_and(|(s, _)| s == "True"))
}

/// Why a definition is not established (for a timeout's message).
fn describe_pending(crd: Option<&CustomResourceDefinition>) -> String {
    let Some(crd) = crd else {
        return "it does not exist".into();
    };
    match condition(crd, "Established") {
        Some((status, message)) if !message.is_empty() => {
            format!("Established is {status}: {message}")
        }
        Some((status, _)) => format!("Established is {status}"),
        None => "no Established condition yet".into(),
    }
}

/// Waits until every definition named in `names` is `Established` (read from
/// a list, then a watch, until `deadline`), then until the API server serves
/// each of `served` (`(group, version, plural)`). Returns the definitions
/// that did not get there, each with why (a clause: "is not Established
/// after 30s (...)").
pub async fn wait_established(
    client: &Client,
    names: &[String],
    served: &[(String, String, String)],
    timeout: Duration,
) -> Result<(), Vec<(String, String)>> {
    let deadline = Instant::now() + timeout;
    let api = client.api::<CustomResourceDefinition>(None);
    let mut seen: BTreeMap<String, CustomResourceDefinition> = BTreeMap::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let pending = |seen: &BTreeMap<String, CustomResourceDefinition>,
                   failed: &mut Vec<(String, String)>| {
        let mut left = Vec::new();
        for name in names {
            match seen.get(name).map(verdict) {
                Some(Ok(true)) => {}
                Some(Err(why)) => {
                    if !failed.iter().any(|(n, _)| n == name) {
                        failed.push((name.clone(), why));
                    }
                }
                _ => left.push(name.clone()),
            }
        }
        left
    };
    'relist: loop {
        let list =
            match tokio::time::timeout_at(deadline, api.list_all(&ListParams::default())).await {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return Err(all_failed(names, &format!("cannot be read: {e}"))),
                Err(_) => break 'relist,
            };
        seen = list
            .items
            .into_iter()
            .map(|c| (c.metadata.name_str().to_string(), c))
            .collect();
        if pending(&seen, &mut failed).is_empty() {
            break 'relist;
        }
        let stream = match api
            .watch(
                &ListParams::default(),
                &list.resource_version,
                Duration::from_secs(60),
            )
            .await
        {
            Ok(s) => s,
            Err(e) => return Err(all_failed(names, &format!("cannot be watched: {e}"))),
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => break 'relist,
                // the server ended the watch (or it expired): read them again
                Ok(None | Some(Err(_)) | Some(Ok(WatchEvent::Error(_)))) => continue 'relist,
                Ok(Some(Ok(WatchEvent::Added(c) | WatchEvent::Modified(c)))) => {
                    seen.insert(c.metadata.name_str().to_string(), c);
                }
                Ok(Some(Ok(WatchEvent::Deleted(c)))) => {
                    seen.remove(c.metadata.name_str());
                }
                Ok(Some(Ok(WatchEvent::Bookmark(_)))) => continue,
            }
            if pending(&seen, &mut failed).is_empty() {
                break 'relist;
            }
        }
    }
    for name in pending(&seen, &mut failed) {
        failed.push((
            name.clone(),
            format!(
                "is not Established after {}s ({})",
                timeout.as_secs(),
                describe_pending(seen.get(&name))
            ),
        ));
    }
    if !failed.is_empty() {
        return Err(failed);
    }
    wait_served(client, served, deadline).await
}

fn all_failed(names: &[String], why: &str) -> Vec<(String, String)> {
    names.iter().map(|n| (n.clone(), why.to_string())).collect()
}

/// Whether discovery lists `plural` in `group/version`.
async fn is_served(client: &Client, group: &str, version: &str, plural: &str) -> bool {
    client
        .get_raw(&format!("/apis/{group}/{version}"))
        .await
        .ok()
        .and_then(|v| v.get("resources").cloned())
        .and_then(|r| r.as_array().cloned())
        .is_some_and(|r| r.iter().any(|x| x["name"] == plural))
}

/// Waits until discovery lists each kind. The API server registers a
/// definition's kinds right after it records `Established`, so a client that
/// saw the condition can be a moment early; discovery has no watch, so this
/// asks again after a short, growing pause (usually never: the first answer
/// already lists them).
async fn wait_served(
    client: &Client,
    served: &[(String, String, String)],
    deadline: Instant,
) -> Result<(), Vec<(String, String)>> {
    let mut pause = Duration::from_millis(5);
    for (group, version, plural) in served {
        loop {
            if is_served(client, group, version, plural).await {
                break;
            }
            if Instant::now() + pause > deadline {
                return Err(vec![(
                    format!("{plural}.{group}"),
                    format!("is Established, but {group}/{version} {plural} is not served"),
                )]);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
    };

    fn with_conditions(c: &[(&str, &str, &str)]) -> CustomResourceDefinition {
        CustomResourceDefinition {
            status: Some(CustomResourceDefinitionStatus {
                conditions: Some(
                    c.iter()
                        .map(|(t, s, m)| CustomResourceDefinitionCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            message: Some(m.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_follow_the_conditions() {
        assert_eq!(verdict(&CustomResourceDefinition::default()), Ok(false));
        assert_eq!(
            verdict(&with_conditions(&[
                ("NamesAccepted", "True", ""),
                ("Established", "True", "")
            ])),
            Ok(true)
        );
        let refused = with_conditions(&[
            ("NamesAccepted", "False", "\"orders\" is already in use"),
            ("Established", "False", "not all names are accepted"),
        ]);
        assert_eq!(
            verdict(&refused),
            Err(
                "is not established: its names are not accepted: \"orders\" is already in use"
                    .into()
            )
        );
        assert_eq!(
            describe_pending(Some(&refused)),
            "Established is False: not all names are accepted"
        );
        assert_eq!(describe_pending(None), "it does not exist");
    }
}
