//! Health checks against the cluster: reads a source's applied objects
//! (and the pods of its workloads, for the reasons) and judges them with
//! [`crate::health`]; waits, with a deadline, until a set of objects is
//! healthy (between sync waves, for hook Jobs, for `korral sync --wait`).

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use reconcilers::runtime::{Client, ClientError, ListParams};

use crate::health::{self, Health, Status, Unhealthy};
use crate::live::CONCURRENCY;
use crate::render::DesiredObject;

/// How often a wait looks again.
pub const POLL: Duration = Duration::from_millis(500);

/// Why the pods selected by `workload` are not ready, if they say.
async fn pods_reason(client: &Client, workload: &Value, namespace: Option<&str>) -> Option<String> {
    let selector = health::selector_query(workload)?;
    let pods = client
        .api::<Pod>(namespace)
        .list(&ListParams {
            label_selector: Some(selector),
            ..Default::default()
        })
        .await;
    match pods {
        Ok(list) => {
            let values: Vec<Value> = list
                .items
                .iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect();
            health::pod_reason(&values)
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot list the pods of a workload");
            None
        }
    }
}

/// The health of one declared object in the cluster.
pub async fn object_health(
    client: &Client,
    o: &DesiredObject,
) -> Result<(Health, Option<String>), ClientError> {
    let live = client
        .dynamic(&o.info, o.key.namespace.as_deref())
        .get_opt(&o.key.name)
        .await?;
    let Some(live) = live else {
        return Ok((
            Health {
                status: Status::NotFound,
                message: "not found".into(),
            },
            None,
        ));
    };
    let h = health::assess(&live);
    let why = if !h.is_current() && health::has_pods(&o.key.kind) {
        pods_reason(client, &live, o.key.namespace.as_deref()).await
    } else {
        None
    };
    Ok((h, why))
}

/// The objects among `objects` that are not healthy, in their order;
/// names are relative to the namespace `home`. Kinds without a status
/// (ConfigMaps, Secrets, RBAC, …) are not read.
pub async fn unhealthy(
    client: &Client,
    objects: &[&DesiredObject],
    home: &str,
) -> Result<Vec<Unhealthy>, ClientError> {
    let futures: Vec<_> = objects
        .iter()
        .filter(|o| !health::without_status(&o.key.group, &o.key.kind))
        .map(|o| {
            let object = o.key.short(home);
            let check = object_health(client, o);
            async move {
                let (h, why) = check.await?;
                Ok::<_, ClientError>((!h.is_current()).then_some(Unhealthy {
                    object,
                    health: h,
                    why,
                }))
            }
        })
        .collect();
    let checked: Vec<Result<Option<Unhealthy>, ClientError>> =
        stream::iter(futures).buffered(CONCURRENCY).collect().await;
    let mut out = Vec::new();
    for c in checked {
        if let Some(u) = c? {
            out.push(u);
        }
    }
    Ok(out)
}

/// Whether any of `unhealthy` will not get better by waiting.
pub fn any_failed(unhealthy: &[Unhealthy]) -> bool {
    unhealthy.iter().any(|u| u.health.status == Status::Failed)
}

/// Waits until every object of `objects` is healthy: `Err` with what is not
/// when `deadline` passes, or at once when one has Failed. Errors reading
/// the cluster are retried until the deadline.
pub async fn wait_healthy(
    client: &Client,
    objects: &[&DesiredObject],
    home: &str,
    deadline: Instant,
) -> Result<(), Vec<Unhealthy>> {
    loop {
        let last = match unhealthy(client, objects, home).await {
            Ok(u) if u.is_empty() => return Ok(()),
            Ok(u) if any_failed(&u) => return Err(u),
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "health check: cannot read the cluster");
                vec![Unhealthy {
                    object: "the cluster".into(),
                    health: Health {
                        status: Status::InProgress,
                        message: format!("cannot be read: {e}"),
                    },
                    why: None,
                }]
            }
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        tracing::debug!(waiting = %health::summary(&last), "waiting for health");
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}
