//! The node heartbeat: the Lease `kube-node-lease/<node>` renewed every
//! `heartbeat` (10 s), owned by the Node so it goes when the Node goes. The
//! node-health controller reads `renewTime` to decide Ready/Unknown.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use reconcilers::runtime::Client;
use reconcilers::runtime::client::WriteParams;

/// The namespace of node leases.
pub const NAMESPACE: &str = "kube-node-lease";

fn spec(node: &str, duration: Duration) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(node.to_string()),
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(40)),
        renew_time: Some(schemas::time::micro_now()),
        ..Default::default()
    }
}

/// Renews the lease once (creating it if needed); returns the stored lease.
pub async fn renew(
    client: &Client,
    node: &str,
    duration: Duration,
    cached: Option<Lease>,
) -> Result<Lease, String> {
    let api = client.api::<Lease>(Some(NAMESPACE));
    let params = WriteParams {
        field_manager: Some("korral-node".into()),
        ..Default::default()
    };
    let current = match cached {
        Some(l) => Some(l),
        None => api
            .get_opt(node)
            .await
            .map_err(|e| format!("reading lease: {e}"))?,
    };
    match current {
        Some(mut l) => {
            l.spec = Some(spec(node, duration));
            match api.replace(node, &l, &params).await {
                Ok(l) => Ok(l),
                Err(e) if e.is_conflict() || e.is_not_found() => {
                    // someone else wrote it (or it was deleted): read and retry once
                    Box::pin(renew(client, node, duration, None)).await
                }
                Err(e) => Err(format!("renewing lease: {e}")),
            }
        }
        None => {
            let owner = client
                .api::<Node>(None)
                .get_opt(node)
                .await
                .ok()
                .flatten()
                .and_then(|n| n.metadata.uid)
                .map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: node.to_string(),
                        uid,
                        controller: None,
                        block_owner_deletion: None,
                    }]
                });
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.to_string()),
                    namespace: Some(NAMESPACE.into()),
                    owner_references: owner,
                    ..Default::default()
                },
                spec: Some(spec(node, duration)),
            };
            match api.create(&lease, &params).await {
                Ok(l) => Ok(l),
                Err(e) if e.is_already_exists() => {
                    Box::pin(renew(client, node, duration, None)).await
                }
                Err(e) => Err(format!("creating lease: {e}")),
            }
        }
    }
}

/// Renews the lease every `period`, retrying failures sooner (like the kubelet: 200 ms doubling to 7 s).
pub async fn heartbeat(client: Client, node: String, period: Duration, duration: Duration) {
    let mut cached: Option<Lease> = None;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut retry = Duration::from_millis(200);
        loop {
            match renew(&client, &node, duration, cached.take()).await {
                Ok(l) => {
                    cached = Some(l);
                    break;
                }
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, ?retry, "lease renewal failed; retrying");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(7));
                    if retry >= period {
                        break;
                    }
                }
            }
        }
    }
}
