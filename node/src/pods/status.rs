//! Pod status from what the runtime and the probes report: phase,
//! conditions (PodScheduled, PodReadyToStartContainers, Initialized,
//! ContainersReady, Ready), IPs, start time, and per container its state,
//! last state, restart count, readiness and image — Kubernetes' rules.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemas::MetaExt;

use crate::runtime::{ContainerInfo, State};

/// A container's attempts: the latest and the one before it.
#[derive(Clone, Debug, Default)]
pub struct Attempts {
    /// The latest attempt.
    pub latest: Option<ContainerInfo>,
    /// The attempt before it.
    pub previous: Option<ContainerInfo>,
}

/// Groups a pod's containers by name, latest attempt first.
pub fn by_name(infos: &[ContainerInfo]) -> HashMap<String, Attempts> {
    let mut sorted: Vec<&ContainerInfo> = infos.iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.attempt));
    let mut out: HashMap<String, Attempts> = HashMap::new();
    for c in sorted {
        let a = out.entry(c.name.clone()).or_default();
        if a.latest.is_none() {
            a.latest = Some(c.clone());
        } else if a.previous.is_none() {
            a.previous = Some(c.clone());
        }
    }
    out
}

/// The pod's restart policy.
pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether an exited container is restarted under `policy`.
pub fn restarts(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

fn terminated(c: &ContainerInfo, kind: &str) -> Option<ContainerState> {
    match &c.state {
        State::Exited {
            code,
            finished_at,
            reason,
        } => {
            Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: *code,
                    signal: None,
                    reason: Some(reason.clone().unwrap_or_else(|| {
                        if *code == 0 { "Completed" } else { "Error" }.to_string()
                    })),
                    message: None,
                    started_at: c.started_at.map(schemas::time::from_utc),
                    finished_at: Some(schemas::time::from_utc(*finished_at)),
                    container_id: Some(format!("{kind}://{}", c.id)),
                }),
                ..Default::default()
            })
        }
        _ => None,
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

/// What the reconciler knows beyond the runtime's records.
pub struct Observed<'a> {
    /// The runtime's name (container id scheme).
    pub kind: &'a str,
    /// Containers by name.
    pub attempts: &'a HashMap<String, Attempts>,
    /// Why a container could not be started: (reason, message).
    pub waiting: &'a HashMap<String, (String, String)>,
    /// Containers in crash-loop back-off, until when.
    pub backoff_until: &'a HashMap<String, DateTime<Utc>>,
    /// (ready, started) per running container.
    pub probes: &'a (dyn Fn(&Container, &ContainerInfo) -> (bool, bool) + Send + Sync),
    /// The pod's IP once its sandbox exists.
    pub pod_ip: Option<&'a str>,
    /// The node's IP.
    pub host_ip: &'a str,
    /// When the node took the pod.
    pub start_time: Time,
    /// Whether the pod's volumes are ready.
    pub volumes_ready: bool,
    /// The pod is being deleted: nothing restarts, and once nothing runs
    /// the phase is terminal (Succeeded, or Failed if a container failed or
    /// never ran), as the kubelet reports it before the final delete.
    pub terminating: bool,
}

fn container_status(
    pod: &Pod,
    c: &Container,
    o: &Observed<'_>,
    init_pending: bool,
    is_init: bool,
) -> ContainerStatus {
    let a = o.attempts.get(&c.name).cloned().unwrap_or_default();
    let image = c.image.clone().unwrap_or_default();
    let mut s = ContainerStatus {
        name: c.name.clone(),
        image: image.clone(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        ..Default::default()
    };
    let Some(latest) = a.latest else {
        s.state = Some(match o.waiting.get(&c.name) {
            Some((reason, msg)) => waiting(reason, Some(msg.clone())),
            None if init_pending && !is_init => waiting("PodInitializing", None),
            None => waiting("ContainerCreating", None),
        });
        return s;
    };
    s.restart_count = i32::try_from(latest.attempt).unwrap_or(i32::MAX);
    s.image_id = latest.image_id.clone();
    s.container_id = Some(format!("{}://{}", o.kind, latest.id));
    s.last_state = a
        .previous
        .as_ref()
        .and_then(|p| terminated(p, o.kind))
        .or_else(|| Some(ContainerState::default()));
    match &latest.state {
        State::Created | State::Running => {
            let (ready, started) = (o.probes)(c, &latest);
            s.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: latest.started_at.map(schemas::time::from_utc),
                }),
                ..Default::default()
            });
            s.ready = ready && latest.state == State::Running;
            s.started = Some(started);
        }
        State::Exited { code, .. } => {
            let policy = restart_policy(pod);
            let will_restart = if o.terminating {
                false
            } else if is_init {
                *code != 0 && policy != "Never"
            } else {
                restarts(policy, *code)
            };
            if will_restart {
                let last = terminated(&latest, o.kind);
                let msg = o.backoff_until.get(&c.name).map(|until| {
                    let secs = (*until - Utc::now()).num_seconds().max(0);
                    format!(
                        "back-off {secs}s restarting failed container={} pod={}_{}({})",
                        c.name,
                        pod.metadata.name_str(),
                        pod.metadata.namespace_str(),
                        pod.metadata.uid.as_deref().unwrap_or("")
                    )
                });
                s.state = Some(match o.waiting.get(&c.name) {
                    Some((reason, m)) => waiting(reason, Some(m.clone())),
                    None => waiting("CrashLoopBackOff", msg),
                });
                s.last_state = last;
            } else {
                s.state = terminated(&latest, o.kind);
            }
        }
    }
    s
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, old: Option<&PodStatus>) -> PodCondition {
    let status = if ok { "True" } else { "False" }.to_string();
    let prev = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let last_transition_time = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(schemas::time::now()),
    };
    PodCondition {
        type_: type_.to_string(),
        status,
        last_transition_time,
        reason: if ok { None } else { reason.map(str::to_string) },
        ..Default::default()
    }
}

/// The QoS class of a pod.
pub fn qos_class(pod: &Pod) -> &'static str {
    let containers: Vec<&Container> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let r = c.resources.clone().unwrap_or_default();
        let limits = r.limits.unwrap_or_default();
        let requests = r.requests.unwrap_or_default();
        if !limits.is_empty() || !requests.is_empty() {
            any = true;
        }
        for res in ["cpu", "memory"] {
            match (limits.get(res), requests.get(res)) {
                (Some(l), Some(q)) if l == q => {}
                (Some(_), None) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Computes the pod's status.
pub fn compute(pod: &Pod, o: &Observed<'_>) -> PodStatus {
    let old = pod.status.as_ref();
    let empty = Vec::new();
    let spec = pod.spec.as_ref();
    let inits = spec
        .and_then(|s| s.init_containers.as_ref())
        .unwrap_or(&empty);
    let containers = spec.map(|s| &s.containers).unwrap_or(&empty);
    let policy = restart_policy(pod);
    let exited_ok = |name: &str| {
        o.attempts
            .get(name)
            .and_then(|a| a.latest.as_ref())
            .is_some_and(|l| matches!(l.state, State::Exited { code: 0, .. }))
    };
    let init_failed = policy == "Never"
        && inits.iter().any(|c| {
            o.attempts
                .get(&c.name)
                .and_then(|a| a.latest.as_ref())
                .is_some_and(|l| matches!(l.state, State::Exited { code, .. } if code != 0))
        });
    let initialized = inits.iter().all(|c| exited_ok(&c.name));
    let init_statuses: Vec<ContainerStatus> = inits
        .iter()
        .map(|c| container_status(pod, c, o, !initialized, true))
        .collect();
    let statuses: Vec<ContainerStatus> = containers
        .iter()
        .map(|c| container_status(pod, c, o, !initialized, false))
        .collect();
    let (mut running, mut waiting_n, mut succeeded, mut failed, mut restarting) = (0, 0, 0, 0, 0);
    for (c, s) in containers.iter().zip(&statuses) {
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            if t.exit_code == 0 {
                succeeded += 1;
            } else {
                failed += 1;
            }
        } else if st.waiting.is_some() {
            let ever_ran = o.attempts.get(&c.name).is_some_and(|a| a.latest.is_some());
            if ever_ran {
                restarting += 1;
            } else {
                waiting_n += 1;
            }
        }
    }
    let phase = if o.terminating && running == 0 {
        if failed > 0 || waiting_n > 0 || restarting > 0 || !initialized || containers.is_empty() {
            "Failed"
        } else {
            "Succeeded"
        }
    } else if init_failed {
        "Failed"
    } else if !initialized
        || o.pod_ip.is_none()
        || (waiting_n > 0 && running == 0 && restarting == 0)
    {
        "Pending"
    } else if running > 0 || restarting > 0 || waiting_n > 0 {
        "Running"
    } else if containers.is_empty() {
        "Pending"
    } else if failed > 0 {
        "Failed"
    } else if succeeded > 0 {
        "Succeeded"
    } else {
        "Pending"
    };
    let containers_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let not_ready = |_: ()| {
        if phase == "Succeeded" || phase == "Failed" {
            Some("PodCompleted")
        } else {
            Some("ContainersNotReady")
        }
    };
    let scheduled = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", true, None, None));
    let conditions = vec![
        condition("PodReadyToStartContainers", o.pod_ip.is_some(), None, old),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            old,
        ),
        condition("Ready", containers_ready, not_ready(()), old),
        condition("ContainersReady", containers_ready, not_ready(()), old),
        scheduled,
    ];
    let _ = o.volumes_ready;
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(o.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: o.host_ip.to_string(),
        }]),
        pod_ip: o.pod_ip.map(str::to_string),
        pod_ips: o.pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
        start_time: Some(
            old.and_then(|s| s.start_time.clone())
                .unwrap_or_else(|| o.start_time.clone()),
        ),
        init_container_statuses: if inits.is_empty() {
            None
        } else {
            Some(init_statuses)
        },
        container_statuses: Some(statuses),
        qos_class: Some(qos_class(pod).to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "a", "image": "busybox"}]}
        }))
        .expect("pod")
    }

    fn info(attempt: u32, state: State) -> ContainerInfo {
        ContainerInfo {
            id: format!("id{attempt}"),
            pod_uid: "u".into(),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            name: "a".into(),
            attempt,
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            state,
            started_at: Some(Utc::now()),
            log_path: PathBuf::new(),
        }
    }

    fn observe(p: &Pod, infos: &[ContainerInfo], ready: bool) -> PodStatus {
        observe_as(p, infos, ready, false)
    }

    fn observe_as(p: &Pod, infos: &[ContainerInfo], ready: bool, terminating: bool) -> PodStatus {
        let attempts = by_name(infos);
        let (w, b) = (HashMap::new(), HashMap::new());
        let probes = move |_: &Container, _: &ContainerInfo| (ready, true);
        compute(
            p,
            &Observed {
                kind: "test",
                attempts: &attempts,
                waiting: &w,
                backoff_until: &b,
                probes: &probes,
                pod_ip: Some("10.0.0.2"),
                host_ip: "192.168.0.1",
                start_time: schemas::time::now(),
                volumes_ready: true,
                terminating,
            },
        )
    }

    fn cond(s: &PodStatus, t: &str) -> String {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .map(|c| c.status.clone())
            .unwrap_or_default()
    }

    #[test]
    fn running_and_ready() {
        let p = pod("Always");
        let s = observe(&p, &[info(0, State::Running)], true);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready"), "True");
        let cs = &s.container_statuses.as_ref().expect("statuses")[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("test://id0"));
        let s = observe(&p, &[info(0, State::Running)], false);
        assert_eq!(cond(&s, "Ready"), "False");
    }

    #[test]
    fn restarts_show_last_state_and_count() {
        let p = pod("Always");
        let exited = State::Exited {
            code: 137,
            finished_at: Utc::now(),
            reason: None,
        };
        let s = observe(
            &p,
            &[info(0, exited.clone()), info(1, State::Running)],
            true,
        );
        let cs = &s.container_statuses.as_ref().expect("statuses")[0];
        assert_eq!(cs.restart_count, 1);
        let last = cs
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .expect("last state");
        assert_eq!(last.exit_code, 137);
        // exited and waiting to restart: CrashLoopBackOff, still Running
        let s = observe(&p, &[info(0, exited)], true);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.as_ref().expect("statuses")[0];
        assert_eq!(
            cs.state
                .as_ref()
                .and_then(|x| x.waiting.as_ref())
                .and_then(|w| w.reason.as_deref()),
            Some("CrashLoopBackOff")
        );
    }

    #[test]
    fn terminal_phases() {
        let done = |code| State::Exited {
            code,
            finished_at: Utc::now(),
            reason: None,
        };
        assert_eq!(
            observe(&pod("Never"), &[info(0, done(0))], true)
                .phase
                .as_deref(),
            Some("Succeeded")
        );
        assert_eq!(
            observe(&pod("Never"), &[info(0, done(1))], true)
                .phase
                .as_deref(),
            Some("Failed")
        );
        assert_eq!(
            observe(&pod("OnFailure"), &[info(0, done(0))], true)
                .phase
                .as_deref(),
            Some("Succeeded")
        );
        assert_eq!(
            observe(&pod("OnFailure"), &[info(0, done(2))], true)
                .phase
                .as_deref(),
            Some("Running")
        );
        assert_eq!(
            observe(&pod("Always"), &[], true).phase.as_deref(),
            Some("Pending")
        );
    }

    #[test]
    fn a_terminating_pod_reports_its_stopped_containers_and_not_ready() {
        let p = pod("Always");
        let killed = |code| State::Exited {
            code,
            finished_at: Utc::now(),
            reason: None,
        };
        // still running during the grace period: readiness as the probes say
        let s = observe_as(&p, &[info(0, State::Running)], true, true);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready"), "True");
        // stopped by SIGTERM: terminated (no CrashLoopBackOff), not ready, a terminal phase
        let s = observe_as(&p, &[info(0, killed(143))], true, true);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(cond(&s, "Ready"), "False");
        assert_eq!(cond(&s, "ContainersReady"), "False");
        let cs = &s.container_statuses.as_ref().expect("statuses")[0];
        assert!(!cs.ready);
        let t = cs
            .state
            .as_ref()
            .and_then(|x| x.terminated.as_ref())
            .expect("terminated");
        assert_eq!((t.exit_code, t.reason.as_deref()), (143, Some("Error")));
        let s = observe_as(&p, &[info(0, killed(0))], true, true);
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&s, "Ready"), "False");
    }
}
