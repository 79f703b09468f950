//! What a HorizontalPodAutoscaler reads and writes through the API, as
//! kube's HPA does: the target's `scale` subresource (any kind that serves
//! one — Deployments, StatefulSets, ReplicaSets, custom resources), the pods
//! its selector names, and their usage from the resource metrics API
//! (`metrics.k8s.io/v1beta1` PodMetrics).

use chrono::{DateTime, Utc};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference;
use k8s_openapi::api::core::v1::Pod;
use schemas::QuantityExt;
use schemas::resource_metrics::PodMetrics;

use crate::controllers::custom_kinds;
use crate::runtime::client::DynApi;
use crate::runtime::{Client, ListParams};

/// A target's scale and where to write it back.
pub struct Target {
    api: DynApi,
    name: String,
    /// The scale as read.
    pub scale: Scale,
}

/// Reads the scale of `target` in `namespace`.
pub async fn scale(
    client: &Client,
    namespace: &str,
    target: &CrossVersionObjectReference,
) -> Result<Target, String> {
    let api_version = target.api_version.as_deref().unwrap_or("v1");
    let info = custom_kinds::resolve(client, api_version, &target.kind)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "unable to determine resource for scale target reference: no matches for kind {:?} in version {api_version:?}",
                target.kind
            )
        })?;
    let api = client.dynamic(&info, Some(namespace));
    let v = api
        .get_subresource(&target.name, "scale")
        .await
        .map_err(|e| e.to_string())?;
    let scale: Scale = serde_json::from_value(v).map_err(|e| format!("decoding the scale: {e}"))?;
    Ok(Target {
        api,
        name: target.name.clone(),
        scale,
    })
}

impl Target {
    /// `spec.replicas` of the scale.
    pub fn replicas(&self) -> i32 {
        self.scale
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0)
    }

    /// `status.selector` of the scale (empty when the target names none).
    pub fn selector(&self) -> &str {
        self.scale
            .status
            .as_ref()
            .and_then(|s| s.selector.as_deref())
            .unwrap_or("")
    }

    /// Writes `replicas` to the target's scale.
    pub async fn set_replicas(&mut self, replicas: i32) -> Result<(), String> {
        let mut scale = self.scale.clone();
        scale.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        let body = serde_json::to_value(&scale).map_err(|e| e.to_string())?;
        let v = self
            .api
            .replace_subresource(&self.name, "scale", &body)
            .await
            .map_err(|e| e.to_string())?;
        self.scale = serde_json::from_value(v).map_err(|e| format!("decoding the scale: {e}"))?;
        Ok(())
    }
}

/// The pods `selector` names in `namespace`.
pub async fn pods(client: &Client, namespace: &str, selector: &str) -> Result<Vec<Pod>, String> {
    let p = ListParams {
        label_selector: Some(selector.to_string()),
        ..Default::default()
    };
    client
        .api::<Pod>(Some(namespace))
        .list_all(&p)
        .await
        .map(|l| l.items)
        .map_err(|e| e.to_string())
}

/// The usage of `resource` in a pod's sample, in milli-units: of
/// `container` only, or the sum over the pod's containers; `None` when the
/// sample lacks it.
pub fn usage(m: &PodMetrics, resource: &str, container: Option<&str>) -> Option<i64> {
    let mut total = 0i64;
    let mut found = false;
    for c in &m.containers {
        if container.is_some_and(|n| n != c.name) {
            continue;
        }
        let q = c.usage.get(resource)?;
        total = total.saturating_add(q.millis());
        found = true;
    }
    found.then_some(total)
}

/// When a pod's sample was taken and the window it covers.
pub fn sampled(m: &PodMetrics) -> Option<(DateTime<Utc>, chrono::Duration)> {
    let at = schemas::time::parse(&m.timestamp)?;
    let window =
        schemas::duration::parse_duration(if m.window.is_empty() { "0" } else { &m.window })
            .ok()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .unwrap_or_else(chrono::Duration::zero);
    Some((at, window))
}

/// The resource metrics of the pods `selector` names in `namespace`.
pub async fn pod_metrics(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> Result<Vec<PodMetrics>, String> {
    let p = ListParams {
        label_selector: Some(selector.to_string()),
        ..Default::default()
    };
    let list = client
        .api::<PodMetrics>(Some(namespace))
        .list_all(&p)
        .await
        .map_err(|e| format!("unable to fetch metrics from resource metrics API: {e}"))?;
    if list.items.is_empty() {
        return Err("unable to fetch metrics from resource metrics API: no metrics returned from resource metrics API".into());
    }
    Ok(list.items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_sums_containers_or_picks_one() {
        let m: PodMetrics = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
            "containers": [
                {"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
                {"name": "sidecar", "usage": {"cpu": "12500000n", "memory": "1Mi"}}
            ]
        }))
        .expect("metrics");
        assert_eq!(usage(&m, "cpu", None), Some(263));
        assert_eq!(usage(&m, "cpu", Some("app")), Some(250));
        assert_eq!(
            usage(&m, "memory", Some("sidecar")),
            Some(1024 * 1024 * 1000)
        );
        assert_eq!(usage(&m, "cpu", Some("other")), None);
        assert_eq!(usage(&m, "gpu", None), None);
        let (at, window) = sampled(&m).expect("sampled");
        assert_eq!(at.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(window, chrono::Duration::seconds(15));
    }
}
