//! The Node object: registration (create, or adopt and refresh the one a
//! previous run made), its status (capacity, allocatable, addresses, daemon
//! endpoint, node info, conditions) and the periodic condition updates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use reconcilers::runtime::Client;
use reconcilers::runtime::client::{Patch, WriteParams};
use schemas::quantity;

use crate::config::NodeConfig;
use crate::machine::{self, Pressure};

/// The annotation holding the SHA-256 of the node's serving certificate
/// (the API server pins it when it proxies logs and exec).
pub const SERVING_CERT_ANNOTATION: &str = "korral.dev/serving-cert-sha256";

/// What registration learned and what status updates need.
#[derive(Clone, Debug)]
pub struct Registered {
    /// The node's pod CIDR (allocated by the API server).
    pub pod_cidr: Option<String>,
    /// The node's IP.
    pub host_ip: String,
    /// Allocatable cpu (millicores).
    pub cpu_millis: i64,
    /// Allocatable memory (bytes).
    pub memory_bytes: i64,
}

/// Facts that go into the Node status.
#[derive(Clone, Debug)]
pub struct NodeFacts {
    /// The node's IP.
    pub host_ip: String,
    /// The logs/exec endpoint port (0: none).
    pub port: u16,
    /// `containerd://1.6.20` etc.
    pub runtime_version: String,
    /// SHA-256 (hex) of the serving certificate, if any.
    pub cert_sha256: Option<String>,
    /// The path of the node's `/stats/summary` on a shared endpoint (simulated nodes).
    pub stats_path: Option<String>,
}

fn field_manager() -> WriteParams {
    WriteParams {
        field_manager: Some("korral-node".into()),
        ..Default::default()
    }
}

fn quantities(cpu_millis: i64, memory: i64, storage: i64, pods: i64) -> BTreeMap<String, Quantity> {
    let mut m = BTreeMap::new();
    m.insert("cpu".into(), quantity::from_millis(cpu_millis));
    let mem = if memory % 1024 == 0 {
        format!("{}Ki", memory / 1024)
    } else {
        memory.to_string()
    };
    m.insert("memory".into(), Quantity(mem));
    m.insert("pods".into(), quantity::from_units(pods));
    if storage > 0 {
        m.insert("ephemeral-storage".into(), quantity::from_units(storage));
    }
    m
}

fn cond(
    type_: &str,
    ok_status: bool,
    reason: &str,
    message: &str,
    old: Option<&NodeStatus>,
) -> NodeCondition {
    let status = if ok_status { "True" } else { "False" };
    let now = schemas::time::now();
    let prev = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: match prev {
            Some(p) if p.status == status => p.last_transition_time.clone().or(Some(now.clone())),
            _ => Some(now),
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
    }
}

/// The conditions for these pressure signals.
pub fn conditions(p: Pressure, old: Option<&NodeStatus>) -> Vec<NodeCondition> {
    vec![
        cond(
            "MemoryPressure",
            p.memory,
            if p.memory {
                "KubeletHasInsufficientMemory"
            } else {
                "KubeletHasSufficientMemory"
            },
            if p.memory {
                "node has memory pressure"
            } else {
                "node has sufficient memory available"
            },
            old,
        ),
        cond(
            "DiskPressure",
            p.disk,
            if p.disk {
                "KubeletHasDiskPressure"
            } else {
                "KubeletHasNoDiskPressure"
            },
            if p.disk {
                "node has disk pressure"
            } else {
                "node has no disk pressure"
            },
            old,
        ),
        cond(
            "PIDPressure",
            p.pid,
            if p.pid {
                "KubeletHasInsufficientPID"
            } else {
                "KubeletHasSufficientPID"
            },
            if p.pid {
                "node has PID pressure"
            } else {
                "node has sufficient PID available"
            },
            old,
        ),
        cond(
            "Ready",
            true,
            "KubeletReady",
            "korral node daemon is posting ready status",
            old,
        ),
    ]
}

fn status(
    config: &NodeConfig,
    facts: &NodeFacts,
    pressure: Pressure,
    old: Option<&NodeStatus>,
) -> (NodeStatus, i64, i64) {
    let cap = if config.cpu_millis.is_some() && config.memory_bytes.is_some() {
        machine::Capacity {
            cpu_millis: config.cpu_millis.unwrap_or(0),
            memory_bytes: config.memory_bytes.unwrap_or(0),
            ephemeral_storage_bytes: 0,
        }
    } else {
        let mut c = machine::capacity(&config.data_dir);
        if let Some(v) = config.cpu_millis {
            c.cpu_millis = v;
        }
        if let Some(v) = config.memory_bytes {
            c.memory_bytes = v;
        }
        c
    };
    // allocatable: capacity less the kubelet's default hard eviction threshold for memory (100Mi)
    let alloc_mem = (cap.memory_bytes - 100 * 1024 * 1024).max(0);
    let (machine_id, boot_id, kernel, os_image, arch) = machine::system_info();
    let s = NodeStatus {
        capacity: Some(quantities(
            cap.cpu_millis,
            cap.memory_bytes,
            cap.ephemeral_storage_bytes,
            config.max_pods,
        )),
        allocatable: Some(quantities(
            cap.cpu_millis,
            alloc_mem,
            cap.ephemeral_storage_bytes * 9 / 10,
            config.max_pods,
        )),
        conditions: Some(conditions(pressure, old)),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: facts.host_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(facts.port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: machine_id.clone(),
            system_uuid: machine_id,
            boot_id,
            kernel_version: kernel,
            os_image,
            container_runtime_version: facts.runtime_version.clone(),
            kubelet_version: format!("v{}-korral", env!("CARGO_PKG_VERSION")),
            kube_proxy_version: String::new(),
            operating_system: "linux".into(),
            architecture: arch,
            swap: None,
        }),
        ..Default::default()
    };
    (s, cap.cpu_millis, alloc_mem)
}

fn labels(config: &NodeConfig) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut l = BTreeMap::new();
    l.insert("kubernetes.io/hostname".to_string(), config.name.clone());
    l.insert("kubernetes.io/os".to_string(), "linux".to_string());
    l.insert("kubernetes.io/arch".to_string(), arch.to_string());
    l.insert("beta.kubernetes.io/os".to_string(), "linux".to_string());
    l.insert("beta.kubernetes.io/arch".to_string(), arch.to_string());
    l.extend(config.labels.clone());
    l
}

/// Registers the node (or refreshes its labels and annotation) and writes its status.
pub async fn register(
    client: &Client,
    config: &NodeConfig,
    facts: &NodeFacts,
) -> Result<Registered, String> {
    let api = client.api::<Node>(None);
    let mut annotations = BTreeMap::new();
    if let Some(fp) = &facts.cert_sha256 {
        annotations.insert(SERVING_CERT_ANNOTATION.to_string(), fp.clone());
    }
    if let Some(path) = &facts.stats_path {
        annotations.insert(
            schemas::kubelet_stats::STATS_PATH_ANNOTATION.to_string(),
            path.clone(),
        );
    }
    annotations.insert(
        reconcilers::controllers::persistentvolume::ANN_LOCAL_PATH_ROOT.to_string(),
        crate::storage::local_path_root(&config.data_dir)
            .to_string_lossy()
            .into_owned(),
    );
    let node = Node {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(labels(config)),
            annotations: Some(annotations.clone()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!config.taints.is_empty()).then(|| config.taints.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut existing = match api.create(&node, &field_manager()).await {
        Ok(n) => {
            tracing::info!(node = %config.name, "registered the node");
            n
        }
        Err(e) if e.is_already_exists() => {
            let patch = serde_json::json!({"metadata": {"labels": labels(config), "annotations": annotations}});
            let n = api
                .patch(&config.name, &Patch::Merge(patch), &field_manager())
                .await
                .map_err(|e| format!("updating node {}: {e}", config.name))?;
            tracing::info!(node = %config.name, "the node exists; refreshed its labels");
            n
        }
        Err(e) => return Err(format!("registering node {}: {e}", config.name)),
    };
    let (st, cpu, mem) = status(
        config,
        facts,
        machine::pressure(&config.data_dir),
        existing.status.as_ref(),
    );
    existing = api
        .patch_status(
            &config.name,
            &Patch::Merge(serde_json::json!({"status": st})),
            &field_manager(),
        )
        .await
        .map_err(|e| format!("writing node {} status: {e}", config.name))?;
    Ok(Registered {
        pod_cidr: existing.spec.and_then(|s| s.pod_cidr),
        host_ip: facts.host_ip.clone(),
        cpu_millis: cpu,
        memory_bytes: mem,
    })
}

/// Recomputes the node's conditions every `status_check` and writes the
/// status when they change or `status_report` has passed.
pub async fn status_loop(client: Client, config: Arc<NodeConfig>, facts: NodeFacts) {
    let api = client.api::<Node>(None);
    let mut last_written: Option<Instant> = None;
    let mut last = machine::pressure(&config.data_dir);
    loop {
        // the first pass writes at once (the runtime version is known only now)
        if last_written.is_some() {
            tokio::time::sleep(config.timings.status_check).await;
        }
        let now = machine::pressure(&config.data_dir);
        if now == last && last_written.is_some_and(|t| t.elapsed() < config.timings.status_report) {
            continue;
        }
        let old = api.get(&config.name).await.ok().and_then(|n| n.status);
        let (st, _, _) = status(&config, &facts, now, old.as_ref());
        match api
            .patch_status(
                &config.name,
                &Patch::Merge(serde_json::json!({"status": st})),
                &field_manager(),
            )
            .await
        {
            Ok(_) => {
                last = now;
                last_written = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(node = %config.name, error = %e, "cannot update the node status");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
