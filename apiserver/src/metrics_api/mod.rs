//! The Metrics API (`metrics.k8s.io/v1beta1`), served built in — what
//! metrics-server adds to a Kubernetes cluster through an APIService
//! (korral has no aggregation layer yet): `NodeMetrics` (`nodes`) and
//! `PodMetrics` (`pods`, namespaced), `get` and `list` only, with label
//! selectors, `metadata.name`/`metadata.namespace` field selectors, every
//! namespace, and Tables (metrics-server's Name/CPU/Memory/Window columns).
//! `kubectl top` and the HorizontalPodAutoscaler controller read it.
//!
//! The numbers come from the node daemons' `/stats/summary` (`scrape.rs`),
//! read on demand and cached briefly. Not to be confused with
//! `crate::metrics`, the API server's own Prometheus metrics.

pub mod scrape;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use schemas::kubelet_stats::{CpuStats, MemoryStats, PodStats, Summary};
use schemas::resource_metrics::{API_VERSION, GROUP, cpu_quantity, memory_quantity};
use serde_json::{Value, json};

use crate::auth::{Attributes, Decision, Identity, authorize};
use crate::errors::{ApiError, ApiResult};
use crate::http::App;
use crate::http::request::{self, Format, Query};
use crate::registry::ListOptions;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::StatusDetails;

/// The window reported when a node does not say how far apart its samples were
/// (the kubelet's default housekeeping interval).
pub const DEFAULT_WINDOW: &str = "10s";

/// The resources of `metrics.k8s.io/v1beta1` in the legacy discovery form,
/// as metrics-server lists them.
pub fn discovery_resources() -> Vec<Value> {
    vec![
        json!({"name": "nodes", "singularName": "node", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]}),
        json!({"name": "pods", "singularName": "pod", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]}),
    ]
}

/// What a request addresses.
struct Request<'a> {
    pods: bool,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

/// Answers a request under `/apis/metrics.k8s.io/`; `segs` is the path
/// after `/apis/` (group, version, then the resource path).
pub async fn serve(
    app: &App,
    id: &Identity,
    method: &Method,
    segs: &[&str],
    query: &Query,
    headers: &HeaderMap,
    path: &str,
) -> Response {
    match answer(app, id, method, segs, query, headers, path).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(
    app: &App,
    id: &Identity,
    method: &Method,
    segs: &[&str],
    query: &Query,
    headers: &HeaderMap,
    path: &str,
) -> ApiResult<Response> {
    let r = match segs {
        [_, "v1beta1", "nodes"] => Request {
            pods: false,
            namespace: None,
            name: None,
        },
        [_, "v1beta1", "nodes", name] => Request {
            pods: false,
            namespace: None,
            name: Some(name),
        },
        [_, "v1beta1", "pods"] => Request {
            pods: true,
            namespace: None,
            name: None,
        },
        [_, "v1beta1", "namespaces", ns, "pods"] => Request {
            pods: true,
            namespace: Some(ns),
            name: None,
        },
        [_, "v1beta1", "namespaces", ns, "pods", name] => Request {
            pods: true,
            namespace: Some(ns),
            name: Some(name),
        },
        _ => return Err(ApiError::no_route(path)),
    };
    let verb = if r.name.is_some() { "get" } else { "list" };
    let resource = if r.pods { "pods" } else { "nodes" };
    // get and list only, as metrics-server's storage
    if *method != Method::GET || query.flag("watch") {
        return Err(ApiError::method_not_allowed(&format!(
            "{method} {resource}.{GROUP}"
        )));
    }
    let attrs = Attributes {
        verb,
        group: GROUP,
        resource,
        subresource: None,
        namespace: r.namespace,
        name: r.name,
    };
    let why = match authorize(id, &attrs) {
        Decision::Allow => None,
        Decision::AllowIf(_) => Some(String::new()),
        Decision::Deny(why) => Some(why),
    };
    if let Some(why) = why {
        return Err(ApiError::forbidden(
            &id.name,
            verb,
            resource,
            GROUP,
            r.namespace,
            r.name,
            &why,
        ));
    }
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
    let fields = match query.get("fieldSelector") {
        // metadata.name and metadata.namespace only (metrics-server's field set)
        Some(f) => FieldSelector::parse(f, object_meta_kind()?)?,
        None => FieldSelector::parse("", object_meta_kind()?)?,
    };
    let now = schemas::time::now_text();
    let items = if r.pods {
        pod_metrics(app, &r, &labels, &now).await?
    } else {
        node_metrics(app, r.name, &labels, &now).await?
    };
    let items: Vec<Value> = items.into_iter().filter(|m| fields.matches(m)).collect();
    let format = request::format(headers, r.name.is_none(), false)?;
    if let Some(name) = r.name {
        let Some(mut item) = items.into_iter().next() else {
            return Err(not_found(r.pods, r.namespace, name));
        };
        if let Format::Table(v) = format {
            return Ok(respond(format, &table(r.pods, &[item], v)));
        }
        let kind = if r.pods { "PodMetrics" } else { "NodeMetrics" };
        let mut typed = json!({"kind": kind, "apiVersion": API_VERSION});
        if let (Some(t), Some(o)) = (typed.as_object_mut(), item.as_object_mut()) {
            t.append(o);
        }
        return Ok(respond(format, &typed));
    }
    if let Format::Table(v) = format {
        return Ok(respond(format, &table(r.pods, &items, v)));
    }
    let kind = if r.pods {
        "PodMetricsList"
    } else {
        "NodeMetricsList"
    };
    Ok(respond(
        format,
        &json!({"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}),
    ))
}

fn respond(format: Format, v: &Value) -> Response {
    match format {
        Format::Yaml => crate::http::respond::yaml(StatusCode::OK, v),
        _ => crate::http::respond::json(StatusCode::OK, v),
    }
}

/// A kind whose field selectors are only `metadata.name` and `metadata.namespace`.
fn object_meta_kind() -> ApiResult<&'static schemas::KindInfo> {
    kind_info("ConfigMap")
}

/// metrics-server's NotFound: `podmetrics.metrics.k8s.io "ns/name" not found`.
fn not_found(pods: bool, namespace: Option<&str>, name: &str) -> ApiError {
    let (resource, subject) = match (pods, namespace) {
        (true, Some(ns)) => ("podmetrics", format!("{ns}/{name}")),
        _ => ("nodemetrics", name.to_string()),
    };
    let mut e = ApiError::with_reason(
        404,
        "NotFound",
        format!("{resource}.{GROUP} \"{subject}\" not found"),
    );
    e.details = Some(Box::new(StatusDetails {
        name: Some(subject),
        group: Some(GROUP.into()),
        kind: Some(resource.into()),
        ..Default::default()
    }));
    e
}

fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn kind_info(kind: &str) -> ApiResult<&'static schemas::KindInfo> {
    schemas::lookup("v1", kind).map_err(|e| ApiError::internal(e.to_string()))
}

/// The `usage` of a CPU and memory sample, if both are complete.
fn usage(cpu: Option<&CpuStats>, memory: Option<&MemoryStats>) -> Option<(u64, u64)> {
    Some((cpu?.usage_nano_cores?, memory?.working_set_bytes?))
}

fn usage_json(cpu: u64, memory: u64) -> Value {
    json!({"cpu": cpu_quantity(cpu).0, "memory": memory_quantity(memory).0})
}

fn window_of(cpu: Option<&CpuStats>) -> String {
    cpu.and_then(|c| c.window.clone())
        .unwrap_or_else(|| DEFAULT_WINDOW.to_string())
}

/// Summaries of `nodes` (Node objects), read concurrently.
async fn summaries(app: &App, nodes: &[Value]) -> HashMap<String, Arc<Summary>> {
    let reads = nodes.iter().map(|n| async move {
        let s = app.metrics_api.summary(app, n).await;
        (name_of(n).to_string(), s)
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .filter_map(|(n, s)| Some((n, s?)))
        .collect()
}

async fn node_metrics(
    app: &App,
    name: Option<&str>,
    labels: &LabelSelector,
    now: &str,
) -> ApiResult<Vec<Value>> {
    let info = kind_info("Node")?;
    let nodes: Vec<Value> = match name {
        Some(n) => match app.registry.get(info, None, n).await {
            Ok(v) => vec![v],
            Err(e) if e.code == 404 => Vec::new(),
            Err(e) => return Err(e),
        },
        None => {
            let all = app
                .registry
                .list(info, None, &ListOptions::default())
                .await?
                .items;
            let names: HashSet<&str> = all.iter().map(name_of).collect();
            app.metrics_api.retain(&names);
            all
        }
    };
    let nodes: Vec<Value> = nodes
        .into_iter()
        .filter(|n| labels.matches(&labels_of(n)))
        .collect();
    let found = summaries(app, &nodes).await;
    Ok(nodes
        .iter()
        .filter_map(|n| {
            let s = found.get(name_of(n))?;
            let (cpu, mem) = usage(s.node.usage.cpu.as_ref(), s.node.usage.memory.as_ref())?;
            let mut meta = json!({"name": name_of(n), "creationTimestamp": now});
            let l = labels_of(n);
            if !l.is_empty() {
                meta["labels"] = json!(l);
            }
            Some(json!({
                "metadata": meta,
                "timestamp": s.node.usage.cpu.as_ref().map(|c| c.time.clone()),
                "window": window_of(s.node.usage.cpu.as_ref()),
                "usage": usage_json(cpu, mem),
            }))
        })
        .collect())
}

/// A pod's metrics from its node's summary: every container with CPU and
/// memory (none: no metrics for the pod).
fn pod_item(pod: &Value, stats: &PodStats, now: &str) -> Option<Value> {
    let containers: Vec<Value> = stats
        .containers
        .iter()
        .filter_map(|c| {
            let (cpu, mem) = usage(c.usage.cpu.as_ref(), c.usage.memory.as_ref())?;
            Some(json!({"name": c.name, "usage": usage_json(cpu, mem)}))
        })
        .collect();
    if containers.is_empty() {
        return None;
    }
    let newest = stats
        .containers
        .iter()
        .filter_map(|c| c.usage.cpu.as_ref())
        .max_by(|a, b| a.time.cmp(&b.time));
    let mut meta = json!({
        "name": name_of(pod),
        "namespace": pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(""),
        "creationTimestamp": now,
    });
    let l = labels_of(pod);
    if !l.is_empty() {
        meta["labels"] = json!(l);
    }
    Some(json!({
        "metadata": meta,
        "timestamp": newest.map(|c| c.time.clone()),
        "window": window_of(newest),
        "containers": containers,
    }))
}

async fn pod_metrics(
    app: &App,
    r: &Request<'_>,
    labels: &LabelSelector,
    now: &str,
) -> ApiResult<Vec<Value>> {
    let info = kind_info("Pod")?;
    let pods: Vec<Value> = match r.name {
        Some(n) => match app.registry.get(info, r.namespace, n).await {
            Ok(v) => vec![v],
            Err(e) if e.code == 404 => Vec::new(),
            Err(e) => return Err(e),
        },
        None => {
            app.registry
                .list(info, r.namespace, &ListOptions::default())
                .await?
                .items
        }
    };
    let node_of = |p: &Value| {
        p.pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    };
    let finished = |p: &Value| {
        matches!(
            p.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        )
    };
    let pods: Vec<Value> = pods
        .into_iter()
        .filter(|p| labels.matches(&labels_of(p)) && node_of(p).is_some() && !finished(p))
        .collect();
    let wanted: HashSet<String> = pods.iter().filter_map(node_of).collect();
    let node_info = kind_info("Node")?;
    let nodes: Vec<Value> = if wanted.len() <= 64 {
        let gets = wanted
            .iter()
            .map(|n| app.registry.get(node_info, None, n.as_str()));
        futures_util::future::join_all(gets)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect()
    } else {
        app.registry
            .list(node_info, None, &ListOptions::default())
            .await?
            .items
            .into_iter()
            .filter(|n| wanted.contains(name_of(n)))
            .collect()
    };
    let found = summaries(app, &nodes).await;
    Ok(pods
        .iter()
        .filter_map(|p| {
            let summary = found.get(&node_of(p)?)?;
            let uid = p.pointer("/metadata/uid").and_then(Value::as_str)?;
            let stats = summary.pods.iter().find(|s| s.pod_ref.uid == uid)?;
            pod_item(p, stats, now)
        })
        .collect())
}

/// Sums the usage of a PodMetrics' containers (or reads a NodeMetrics').
fn total_usage(item: &Value) -> (Value, Value) {
    let quantity = |v: &Value, key: &str| -> i128 {
        use schemas::QuantityExt;
        v.get(key)
            .and_then(Value::as_str)
            .map(|q| k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.to_string()).nanos())
            .unwrap_or(0)
    };
    let usages: Vec<&Value> = match item.get("containers").and_then(Value::as_array) {
        Some(cs) => cs.iter().filter_map(|c| c.get("usage")).collect(),
        None => item.get("usage").into_iter().collect(),
    };
    let cpu: i128 = usages.iter().map(|u| quantity(u, "cpu")).sum();
    let mem: i128 = usages.iter().map(|u| quantity(u, "memory")).sum();
    let cpu = u64::try_from(cpu).unwrap_or(0);
    let mem = u64::try_from(mem / 1_000_000_000).unwrap_or(0);
    (json!(cpu_quantity(cpu).0), json!(memory_quantity(mem).0))
}

/// metrics-server's Table: Name, CPU, Memory, Window.
fn table(_pods: bool, items: &[Value], version: &str) -> Value {
    let col = |name: &str, format: &str, description: &str| json!({"name": name, "type": "string", "format": format, "description": description, "priority": 0});
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let (cpu, mem) = total_usage(item);
            json!({
                "cells": [name_of(item), cpu, mem, item.get("window").cloned().unwrap_or(Value::Null)],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": format!("meta.k8s.io/{version}"),
                    "metadata": item.get("metadata").cloned().unwrap_or_else(|| json!({})),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": {},
        "columnDefinitions": [
            col("Name", "name", "Name of the resource"),
            col("CPU", "", "CPU usage"),
            col("Memory", "", "Memory usage"),
            col("Window", "", "Interval over which metrics were calculated"),
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::kubelet_stats::{ContainerStats, PodReference, Usage};

    fn stats(containers: Vec<ContainerStats>) -> PodStats {
        PodStats {
            pod_ref: PodReference {
                name: "web".into(),
                namespace: "default".into(),
                uid: "u1".into(),
            },
            containers,
            ..Default::default()
        }
    }

    fn container(name: &str, nano: u64, bytes: u64, time: &str) -> ContainerStats {
        ContainerStats {
            name: name.into(),
            usage: Usage {
                cpu: Some(CpuStats {
                    time: time.into(),
                    usage_nano_cores: Some(nano),
                    usage_core_nano_seconds: Some(nano * 10),
                    window: Some("10.5s".into()),
                }),
                memory: Some(MemoryStats {
                    time: time.into(),
                    working_set_bytes: Some(bytes),
                    ..Default::default()
                }),
                ..Default::default()
            },
        }
    }

    #[test]
    fn pod_metrics_have_metrics_servers_shape() {
        let pod = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1", "labels": {"app": "web"}}});
        let s = stats(vec![
            container("app", 250_000_000, 64 << 20, "2026-12-07T10:00:05Z"),
            container("side", 1_500, 1000, "2026-12-07T10:00:04Z"),
        ]);
        let m = pod_item(&pod, &s, "2026-12-07T10:00:06Z").expect("metrics");
        assert_eq!(
            m,
            json!({
                "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-12-07T10:00:06Z", "labels": {"app": "web"}},
                "timestamp": "2026-12-07T10:00:05Z",
                "window": "10.5s",
                "containers": [
                    {"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
                    {"name": "side", "usage": {"cpu": "1500n", "memory": "1k"}},
                ],
            })
        );
        let t = table(true, &[m], "v1");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "250001500n", "67109864", "10.5s"])
        );
        assert_eq!(t["columnDefinitions"][3]["name"], "Window");
    }

    #[test]
    fn a_pod_without_measured_containers_has_no_metrics() {
        let pod = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1"}});
        let mut c = container("app", 1, 1, "2026-12-07T10:00:05Z");
        c.usage.memory = None;
        assert!(pod_item(&pod, &stats(vec![c]), "now").is_none());
    }

    #[test]
    fn not_found_reads_as_metrics_servers() {
        let e = not_found(true, Some("default"), "web");
        assert_eq!(
            e.message,
            "podmetrics.metrics.k8s.io \"default/web\" not found"
        );
        assert_eq!(
            not_found(false, None, "n1").message,
            "nodemetrics.metrics.k8s.io \"n1\" not found"
        );
    }
}
