//! The `simulated` runtime: no processes at all (like kwok or hollow nodes).
//! Containers are records that turn Running after a configurable delay and
//! run until stopped; exec succeeds at once (input ignored, no output); pod
//! IPs come from a counter. Thousands of nodes fit in one process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast;

use crate::runtime::{
    ContainerConfig, ContainerInfo, ExecStreams, PodSandbox, Result, Runtime, RuntimeError, State,
    event_channel,
};

/// The simulated runtime of one node.
pub struct Simulated {
    start_delay: Duration,
    base: [u8; 3],
    next_ip: AtomicU32,
    next_id: AtomicU32,
    containers: Arc<Mutex<HashMap<String, ContainerInfo>>>,
    ips: Mutex<HashMap<String, String>>,
    events: broadcast::Sender<String>,
}

impl Simulated {
    /// A runtime whose containers run `start_delay` after start, with pod
    /// IPs from `pod_cidr` (`a.b.c.0/24`; 10.0.0.0/24 when unset).
    pub fn new(start_delay: Duration, pod_cidr: Option<&str>) -> Self {
        let base = pod_cidr
            .and_then(|c| c.split('/').next())
            .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
            .map(|ip| {
                let o = ip.octets();
                [o[0], o[1], o[2]]
            })
            .unwrap_or([10, 0, 0]);
        Simulated {
            start_delay,
            base,
            next_ip: AtomicU32::new(2),
            next_id: AtomicU32::new(1),
            containers: Arc::new(Mutex::new(HashMap::new())),
            ips: Mutex::new(HashMap::new()),
            events: event_channel(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ContainerInfo>) -> T) -> Result<T> {
        let mut g = self
            .containers
            .lock()
            .map_err(|_| RuntimeError::Other("simulated runtime state poisoned".into()))?;
        Ok(f(&mut g))
    }
}

#[async_trait::async_trait]
impl Runtime for Simulated {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    async fn version(&self) -> String {
        format!("simulated://{}", env!("CARGO_PKG_VERSION"))
    }

    async fn run_sandbox(&self, sandbox: &PodSandbox) -> Result<String> {
        let mut ips = self
            .ips
            .lock()
            .map_err(|_| RuntimeError::Other("simulated runtime state poisoned".into()))?;
        if let Some(ip) = ips.get(&sandbox.uid) {
            return Ok(ip.clone());
        }
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed) % 253 + 2;
        let ip = format!("{}.{}.{}.{n}", self.base[0], self.base[1], self.base[2]);
        ips.insert(sandbox.uid.clone(), ip.clone());
        Ok(ip)
    }

    async fn remove_sandbox(&self, pod_uid: &str) -> Result<()> {
        if let Ok(mut ips) = self.ips.lock() {
            ips.remove(pod_uid);
        }
        Ok(())
    }

    async fn start(&self, _sandbox: &PodSandbox, c: &ContainerConfig) -> Result<ContainerInfo> {
        let id = format!("sim{:08x}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let info = ContainerInfo {
            id: id.clone(),
            pod_uid: c.pod_uid.clone(),
            pod_namespace: c.pod_namespace.clone(),
            pod_name: c.pod_name.clone(),
            name: c.name.clone(),
            attempt: c.attempt,
            image: c.image.clone(),
            image_id: format!("simulated://{}", c.image),
            state: State::Created,
            started_at: Some(Utc::now()),
            log_path: c.log_path.clone(),
        };
        self.with(|m| m.insert(id.clone(), info.clone()))?;
        let id = id.clone();
        let delay = self.start_delay;
        let events = self.events.clone();
        let uid = c.pod_uid.clone();
        let containers = self.containers.clone();
        // flip to Running after the delay; the reconciler hears of it through events
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Ok(mut m) = containers.lock()
                && let Some(c) = m.get_mut(&id)
                && c.state == State::Created
            {
                c.state = State::Running;
                c.started_at = Some(Utc::now());
            }
            let _ = events.send(uid);
        });
        Ok(info)
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<()> {
        let uid = self.with(|m| {
            m.get_mut(id).map(|c| {
                if c.is_running() {
                    c.state = State::Exited {
                        code: 0,
                        finished_at: Utc::now(),
                        reason: Some("Completed".into()),
                    };
                }
                c.pod_uid.clone()
            })
        })?;
        match uid {
            Some(uid) => {
                let _ = self.events.send(uid);
                Ok(())
            }
            None => Err(RuntimeError::NotFound(id.into())),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.with(|m| m.remove(id))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>> {
        self.with(|m| m.values().cloned().collect())
    }

    async fn exec_streaming(
        &self,
        id: &str,
        _command: &[String],
        streams: ExecStreams,
        _timeout: Duration,
    ) -> Result<i32> {
        if streams.tty {
            return Err(RuntimeError::Invalid(
                "the simulated runtime runs no processes, so it has no terminal (-t) to offer; exec without -t".into(),
            ));
        }
        if self.with(|m| m.get(id).is_some_and(ContainerInfo::is_running))? {
            Ok(0)
        } else {
            Err(RuntimeError::NotFound(id.into()))
        }
    }

    fn events(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }
}
