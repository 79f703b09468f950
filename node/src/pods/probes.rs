//! Liveness, readiness and startup probes: one task per probe of a running
//! container, honouring initialDelaySeconds, periodSeconds, timeoutSeconds
//! and the success/failure thresholds; results are shared with the pod
//! reconciler, which is poked whenever one changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::runtime::Runtime;

/// What the probes of one container currently say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The startup probe passed (or there is none).
    pub started: bool,
    /// The readiness probe passes (true without one, once started).
    pub ready: bool,
    /// The liveness probe failed: restart the container.
    pub unhealthy: bool,
}

type Key = (String, String);

#[derive(Default)]
struct Inner {
    /// (pod uid, container) → (container id, verdict).
    verdicts: HashMap<Key, (String, Verdict)>,
    tasks: HashMap<Key, Vec<tokio::task::AbortHandle>>,
}

/// The probe manager of a node.
#[derive(Clone, Default)]
pub struct Probes {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Startup,
    Readiness,
    Liveness,
}

/// Where probes connect and how commands run.
#[derive(Clone)]
pub struct Target {
    /// The runtime (for exec probes).
    pub runtime: Arc<dyn Runtime>,
    /// The container id.
    pub container_id: String,
    /// The pod's IP (default host of httpGet and tcpSocket).
    pub pod_ip: String,
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(v.unwrap_or(default).max(0)).unwrap_or(0))
}

fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("no container port named {name:?}")),
    }
}

/// Runs one probe once: Ok(()) on success, Err(why) on failure.
pub async fn run_once(probe: &Probe, c: &Container, t: &Target) -> Result<(), String> {
    let timeout = secs(probe.timeout_seconds, 1).max(Duration::from_millis(100));
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let out = t
            .runtime
            .exec(&t.container_id, &cmd, None, timeout)
            .await
            .map_err(|e| e.to_string())?;
        return if out.code == 0 {
            Ok(())
        } else {
            Err(format!(
                "command {cmd:?} exited with {}: {}",
                out.code,
                String::from_utf8_lossy(&out.combined()).trim()
            ))
        };
    }
    if let Some(h) = &probe.http_get {
        let port = resolve_port(&h.port, c)?;
        let host = h.host.clone().unwrap_or_else(|| t.pod_ip.clone());
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let host_part = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let url = format!(
            "{scheme}://{host_part}:{port}{}",
            if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            }
        );
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(timeout)
            .no_proxy()
            .user_agent("kube-probe/korral")
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.get(&url);
        for hd in h.http_headers.iter().flatten() {
            req = req.header(hd.name.as_str(), hd.value.as_str());
        }
        let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let code = resp.status().as_u16();
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, c)?;
        let host = tcp.host.clone().unwrap_or_else(|| t.pod_ip.clone());
        let addr: SocketAddr = format!("{host}:{port}")
            .parse()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .map_err(|_| format!("invalid address {host}:{port}"))?;
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: timeout")),
        };
    }
    Err("the probe has no handler (exec, httpGet, tcpSocket); gRPC probes are not supported".into())
}

impl Probes {
    /// The current verdict of a container (defaults for a container without probes).
    pub fn verdict(&self, uid: &str, c: &Container, container_id: &str) -> Verdict {
        let default = Verdict {
            started: c.startup_probe.is_none(),
            ready: c.startup_probe.is_none() && c.readiness_probe.is_none(),
            unhealthy: false,
        };
        let Ok(g) = self.inner.lock() else {
            return default;
        };
        match g.verdicts.get(&(uid.to_string(), c.name.clone())) {
            Some((id, v)) if id == container_id => *v,
            _ => default,
        }
    }

    /// Whether probes run for this container instance.
    pub fn running_for(&self, uid: &str, name: &str, container_id: &str) -> bool {
        self.inner
            .lock()
            .map(|g| {
                g.verdicts
                    .get(&(uid.to_string(), name.to_string()))
                    .is_some_and(|(id, _)| id == container_id)
            })
            .unwrap_or(false)
    }

    /// Starts the probes of a freshly started (or adopted) container; `poke`
    /// is called when a verdict changes.
    pub fn start(
        &self,
        uid: &str,
        c: &Container,
        target: Target,
        poke: Arc<dyn Fn() + Send + Sync>,
    ) {
        self.stop(uid, &c.name);
        let key = (uid.to_string(), c.name.clone());
        let verdict = Verdict {
            started: c.startup_probe.is_none(),
            ready: c.startup_probe.is_none() && c.readiness_probe.is_none(),
            unhealthy: false,
        };
        let mut handles = Vec::new();
        for (kind, probe) in [
            (Kind::Startup, &c.startup_probe),
            (Kind::Readiness, &c.readiness_probe),
            (Kind::Liveness, &c.liveness_probe),
        ] {
            let Some(probe) = probe.clone() else { continue };
            let me = self.clone();
            let (key, c, target, poke) = (key.clone(), c.clone(), target.clone(), poke.clone());
            handles.push(
                tokio::spawn(async move { me.worker(kind, probe, key, c, target, poke).await })
                    .abort_handle(),
            );
        }
        if let Ok(mut g) = self.inner.lock() {
            g.verdicts
                .insert(key.clone(), (target.container_id.clone(), verdict));
            g.tasks.insert(key, handles);
        }
    }

    /// Stops the probes of a container.
    pub fn stop(&self, uid: &str, name: &str) {
        if let Ok(mut g) = self.inner.lock() {
            let key = (uid.to_string(), name.to_string());
            for h in g.tasks.remove(&key).into_iter().flatten() {
                h.abort();
            }
            g.verdicts.remove(&key);
        }
    }

    /// Stops every probe of a pod.
    pub fn stop_pod(&self, uid: &str) {
        if let Ok(mut g) = self.inner.lock() {
            let keys: Vec<Key> = g.tasks.keys().filter(|k| k.0 == uid).cloned().collect();
            for k in keys {
                for h in g.tasks.remove(&k).into_iter().flatten() {
                    h.abort();
                }
                g.verdicts.remove(&k);
            }
        }
    }

    fn update(&self, key: &Key, id: &str, f: impl FnOnce(&mut Verdict)) -> bool {
        let Ok(mut g) = self.inner.lock() else {
            return false;
        };
        match g.verdicts.get_mut(key) {
            Some((cid, v)) if cid == id => {
                let before = *v;
                f(v);
                before != *v
            }
            _ => false,
        }
    }

    fn started(&self, key: &Key, id: &str) -> bool {
        self.inner
            .lock()
            .ok()
            .and_then(|g| {
                g.verdicts
                    .get(key)
                    .filter(|(cid, _)| cid == id)
                    .map(|(_, v)| v.started)
            })
            .unwrap_or(false)
    }

    async fn worker(
        self,
        kind: Kind,
        probe: Probe,
        key: Key,
        c: Container,
        target: Target,
        poke: Arc<dyn Fn() + Send + Sync>,
    ) {
        let period = secs(probe.period_seconds, 10).max(Duration::from_millis(100));
        let success_needed = probe.success_threshold.unwrap_or(1).max(1);
        let failure_needed = probe.failure_threshold.unwrap_or(3).max(1);
        tokio::time::sleep(secs(probe.initial_delay_seconds, 0)).await;
        let (mut successes, mut failures) = (0i32, 0i32);
        let id = target.container_id.clone();
        loop {
            if kind != Kind::Startup && !self.started(&key, &id) {
                tokio::time::sleep(period).await;
                continue;
            }
            match run_once(&probe, &c, &target).await {
                Ok(()) => {
                    successes += 1;
                    failures = 0;
                }
                Err(why) => {
                    failures += 1;
                    successes = 0;
                    tracing::debug!(pod_uid = %key.0, container = %key.1, ?kind, %why, "probe failed");
                }
            }
            let changed = match kind {
                Kind::Startup if successes >= success_needed => {
                    let ch = self.update(&key, &id, |v| {
                        v.started = true;
                        if c.readiness_probe.is_none() {
                            v.ready = true;
                        }
                    });
                    if ch {
                        poke();
                    }
                    return;
                }
                Kind::Startup if failures >= failure_needed => {
                    self.update(&key, &id, |v| v.unhealthy = true)
                }
                Kind::Readiness if successes >= success_needed => {
                    self.update(&key, &id, |v| v.ready = true)
                }
                Kind::Readiness if failures >= failure_needed => {
                    self.update(&key, &id, |v| v.ready = false)
                }
                Kind::Liveness if failures >= failure_needed => {
                    tracing::info!(pod_uid = %key.0, container = %key.1, "liveness probe failed; the container will be restarted");
                    self.update(&key, &id, |v| v.unhealthy = true)
                }
                _ => false,
            };
            if changed {
                poke();
            }
            tokio::time::sleep(period).await;
        }
    }
}
