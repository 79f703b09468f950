//! Simulated nodes for the scheduling, node-health and endpoints tests: the
//! test plays the node daemons — it creates Node objects with capacity and a
//! Ready condition, renews their Leases in `kube-node-lease` from a
//! background thread, and writes pod status — through korral's own API
//! client against the server's kubeconfig.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use reconcilers::runtime::{Client, Patch, WriteParams};
use serde_json::{Value, json};

/// A client plus a runtime to drive it from synchronous tests.
pub struct Sim {
    /// The API client (admin).
    pub client: Client,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Sim {
    /// A simulator talking to the server behind `kubeconfig`.
    pub fn new(kubeconfig: &std::path::Path) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client =
            Client::from_kubeconfig(Some(kubeconfig), "korral-test-nodes").expect("client");
        Sim {
            client,
            rt: Arc::new(rt),
        }
    }

    /// Runs a future to completion.
    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Creates a Ready node with `cpu`, `memory` and `pods` allocatable,
    /// `labels` (the hostname label is added) and `spec` (e.g. taints).
    pub fn node(&self, name: &str, cpu: &str, memory: &str, pods: u32, labels: Value, spec: Value) {
        let mut l = labels;
        l["kubernetes.io/hostname"] = json!(name);
        let resources = json!({"cpu": cpu, "memory": memory, "pods": pods.to_string()});
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": l},
            "spec": spec,
            "status": {"capacity": resources, "allocatable": resources,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status", "lastHeartbeatTime": schemas::time::now()}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
        }))
        .expect("node");
        self.block(
            self.client
                .api::<Node>(None)
                .create(&node, &WriteParams::default()),
        )
        .expect("create node");
    }

    /// Writes a pod's IP and Ready condition through the status subresource.
    pub fn pod_status(&self, ns: &str, name: &str, ip: &str, ready: bool) {
        let status = if ready { "True" } else { "False" };
        let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": status}]}});
        self.block(self.client.api::<Pod>(Some(ns)).patch_status(
            name,
            &Patch::Merge(patch),
            &WriteParams::default(),
        ))
        .expect("pod status");
    }

    /// A pod, or `None` when it does not exist.
    pub fn pod(&self, ns: &str, name: &str) -> Option<Pod> {
        self.block(self.client.api::<Pod>(Some(ns)).get_opt(name))
            .expect("get pod")
    }

    /// A node.
    pub fn get_node(&self, name: &str) -> Node {
        self.block(self.client.api::<Node>(None).get(name))
            .expect("get node")
    }

    /// Renews the Leases of `nodes` every `every` until the returned handle is dropped.
    pub fn heartbeat(&self, nodes: &[&str], every: Duration) -> Heartbeat {
        let beating = Arc::new(Mutex::new(
            nodes.iter().map(|n| n.to_string()).collect::<HashSet<_>>(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let (client, rt) = (self.client.clone(), self.rt.clone());
        let (b, s) = (beating.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let api = client.api::<Lease>(Some("kube-node-lease"));
            while !s.load(Ordering::Relaxed) {
                let names: Vec<String> = b
                    .lock()
                    .map(|g| g.iter().cloned().collect())
                    .unwrap_or_default();
                for n in names {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(n.clone()),
                            namespace: Some("kube-node-lease".into()),
                            ..Default::default()
                        },
                        spec: Some(LeaseSpec {
                            holder_identity: Some(n.clone()),
                            lease_duration_seconds: Some(40),
                            renew_time: Some(schemas::time::micro_now()),
                            ..Default::default()
                        }),
                    };
                    rt.block_on(async {
                        match api.get_opt(&n).await {
                            Ok(Some(mut cur)) => {
                                cur.spec = lease.spec.clone();
                                let _ = api.replace(&n, &cur, &WriteParams::default()).await;
                            }
                            Ok(None) => {
                                let _ = api.create(&lease, &WriteParams::default()).await;
                            }
                            Err(_) => {}
                        }
                    });
                }
                std::thread::sleep(every);
            }
        });
        Heartbeat {
            beating,
            stop,
            thread: Some(thread),
        }
    }
}

/// Background lease renewal for some nodes.
pub struct Heartbeat {
    beating: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    /// Stops renewing `node`'s lease (the node "dies").
    pub fn silence(&self, node: &str) {
        if let Ok(mut g) = self.beating.lock() {
            g.remove(node);
        }
    }

    /// Renews `node`'s lease again.
    pub fn resume(&self, node: &str) {
        if let Ok(mut g) = self.beating.lock() {
            g.insert(node.to_string());
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The node a pod is bound to ("" when pending).
pub fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

/// The PodScheduled condition's (status, reason, message).
pub fn scheduled_condition(pod: &Pod) -> Option<(String, String, String)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}
