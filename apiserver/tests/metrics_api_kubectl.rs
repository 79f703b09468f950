//! The built-in Metrics API (`metrics.k8s.io/v1beta1`) through the real
//! kubectl against an in-process server, with a stand-in node daemon: an
//! HTTPS endpoint (its certificate pinned through the Node's
//! `korral.dev/serving-cert-sha256`) answering `/stats/summary` with fixed
//! numbers. Checked: discovery as metrics-server appears, PodMetricsList and
//! NodeMetrics JSON shapes, `kubectl top pod|node`, label and field
//! selectors, metrics-server's NotFound, Tables, and RBAC (403 for a user
//! without a binding, allowed through the aggregated `view` role).

use crate::cluster;

use std::sync::Arc;
use std::time::Duration;

use cluster::{Cluster, text};
use schemas::kubelet_stats::{
    ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats, Summary, Usage,
};
use serde_json::{Value, json};

const TIME: &str = "2026-12-07T10:00:00Z";

fn cpu(nano: u64) -> Option<CpuStats> {
    Some(CpuStats {
        time: TIME.into(),
        usage_nano_cores: Some(nano),
        usage_core_nano_seconds: Some(nano * 100),
        window: Some("10.5s".into()),
    })
}

fn memory(bytes: u64) -> Option<MemoryStats> {
    Some(MemoryStats {
        time: TIME.into(),
        working_set_bytes: Some(bytes),
        ..Default::default()
    })
}

fn container(name: &str, nano: u64, bytes: u64) -> ContainerStats {
    ContainerStats {
        name: name.into(),
        usage: Usage {
            start_time: Some(TIME.into()),
            cpu: cpu(nano),
            memory: memory(bytes),
        },
    }
}

/// A stand-in node endpoint serving `summary`; returns its port and certificate fingerprint.
fn fake_node(summary: Summary) -> (u16, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let sha256: String = ring::digest::digest(&ring::digest::SHA256, ck.cert.der())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .expect("tls");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let body = serde_json::to_string(&summary).expect("summary");
    let app = axum::Router::new().route(
        "/stats/summary",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
    // its own runtime, on a thread that ends with the test process
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let server = axum_server::from_tcp_rustls(listener, config).expect("server");
            let _ = server.serve(app.into_make_service()).await;
        });
    });
    (port, sha256)
}

fn node_manifest(name: &str, port: u16, sha256: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"pool": "a"},
            "annotations": {"korral.dev/serving-cert-sha256": sha256}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}
        }
    })
    .to_string()
}

fn pod_manifest(name: &str, node: &str, app: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "x", "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}, {"name": "side", "image": "busybox"}]}
    })
    .to_string()
}

#[test]
fn metrics_api_serves_pod_and_node_metrics_from_node_summaries() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "x"]);
    c.kubectl_in(
        &["apply", "-f", "-"],
        Some(&pod_manifest("web", "n1", "web")),
    );
    c.kubectl_in(&["apply", "-f", "-"], Some(&pod_manifest("db", "n1", "db")));
    let uid = |name: &str| {
        c.ok(&[
            "get",
            "pod",
            name,
            "-n",
            "x",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
    };
    let pod_stats = |name: &str, main: u64| PodStats {
        pod_ref: PodReference {
            name: name.into(),
            namespace: "x".into(),
            uid: uid(name),
        },
        usage: Usage {
            start_time: Some(TIME.into()),
            ..Default::default()
        },
        containers: vec![
            container("main", main, 64 << 20),
            container("side", 1_000_000, 8 << 20),
        ],
    };
    let summary = Summary {
        node: NodeStats {
            node_name: "n1".into(),
            usage: Usage {
                start_time: Some(TIME.into()),
                cpu: cpu(1_500_000_000),
                memory: memory(2 << 30),
            },
        },
        pods: vec![pod_stats("web", 250_000_000), pod_stats("db", 5_000_000)],
    };
    let (port, sha256) = fake_node(summary);
    let out = c.kubectl_in(
        &["apply", "-f", "-"],
        Some(&node_manifest("n1", port, &sha256)),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // discovery, as metrics-server's APIService makes it appear
    let resources = c.ok(&["api-resources", "--api-group=metrics.k8s.io", "-o", "wide"]);
    assert!(
        resources.contains("nodes") && resources.contains("NodeMetrics"),
        "{resources}"
    );
    assert!(
        resources.contains("pods") && resources.contains("PodMetrics"),
        "{resources}"
    );
    let group: Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/apis/metrics.k8s.io"])).expect("group");
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "metrics.k8s.io/v1beta1"
    );

    // a PodMetricsList
    let list: Value = serde_json::from_str(&c.ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/x/pods",
    ]))
    .expect("json");
    assert_eq!(list["kind"], "PodMetricsList");
    assert_eq!(list["apiVersion"], "metrics.k8s.io/v1beta1");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{list}");
    let web = items
        .iter()
        .find(|i| i["metadata"]["name"] == "web")
        .expect("web");
    assert_eq!(web["metadata"]["namespace"], "x");
    assert_eq!(web["metadata"]["labels"]["app"], "web");
    assert_eq!(web["timestamp"], TIME);
    assert_eq!(web["window"], "10.5s");
    assert_eq!(
        web["containers"],
        json!([{"name": "main", "usage": {"cpu": "250m", "memory": "64Mi"}},
               {"name": "side", "usage": {"cpu": "1m", "memory": "8Mi"}}])
    );
    // selectors and a single object
    let selected: Value = serde_json::from_str(&c.ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/x/pods?labelSelector=app%3Ddb",
    ]))
    .expect("json");
    assert_eq!(selected["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(selected["items"][0]["metadata"]["name"], "db");
    let by_name: Value = serde_json::from_str(&c.ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3Dweb",
    ]))
    .expect("json");
    assert_eq!(by_name["items"].as_array().map(Vec::len), Some(1));
    let one: Value = serde_json::from_str(&c.ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/x/pods/web",
    ]))
    .expect("json");
    assert_eq!(one["kind"], "PodMetrics");
    let missing = c.fails(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/x/pods/nope",
    ]);
    assert!(
        missing.contains("podmetrics.metrics.k8s.io \"x/nope\" not found"),
        "{missing}"
    );

    // kubectl top, which reads the same lists
    let top = c.ok(&["top", "pod", "-n", "x", "--containers"]);
    assert!(
        top.contains("web") && top.contains("250m") && top.contains("64Mi"),
        "{top}"
    );
    let top = c.ok(&["top", "pod", "-n", "x", "-l", "app=web"]);
    assert!(top.contains("web") && !top.contains("db"), "{top}");
    let nodes = c.ok(&["top", "node"]);
    assert!(nodes.contains("n1") && nodes.contains("1500m"), "{nodes}");
    let node: Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/n1"]))
            .expect("json");
    assert_eq!(node["kind"], "NodeMetrics");
    assert_eq!(node["usage"], json!({"cpu": "1500m", "memory": "2Gi"}));
    // Tables (kubectl get on the resources)
    let table = c.ok(&["get", "podmetrics.metrics.k8s.io", "-n", "x"]);
    assert!(
        table.contains("WINDOW") && table.contains("251m"),
        "{table}"
    );

    // RBAC: a user without a binding is refused as by kube-apiserver, the
    // aggregated view role lets it read
    let refused = c.fails(&[
        "--as",
        "jane",
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/x/pods",
    ]);
    assert!(
        refused.contains("pods.metrics.k8s.io is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"x\""),
        "{refused}"
    );
    c.ok(&[
        "create",
        "rolebinding",
        "jane-view",
        "-n",
        "x",
        "--clusterrole=view",
        "--user=jane",
    ]);
    c.wait_for("jane may read pod metrics", Duration::from_secs(20), || {
        c.kubectl(&["--as", "jane", "top", "pod", "-n", "x"])
            .status
            .success()
    });
}
