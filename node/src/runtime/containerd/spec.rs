//! The OCI runtime spec of a container, built from the pod spec and the
//! image config the way containerd's defaults and the CRI plugin do:
//! process (args, env, cwd, user, capabilities), the standard mounts plus
//! volumes and the pod's hosts/resolv.conf/hostname files, namespaces (the
//! pod's network namespace joined by path), cgroup limits for cpu and memory.

use serde_json::{Value, json};

use crate::runtime::ContainerConfig;
use crate::runtime::containerd::image::Resolved;

/// Docker's and containerd's default capabilities.
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The process to run: Kubernetes' rules for command/args over entrypoint/cmd.
pub fn args(c: &ContainerConfig, image: &Resolved) -> Vec<String> {
    match (c.command.is_empty(), c.args.is_empty()) {
        (false, _) => c.command.iter().chain(&c.args).cloned().collect(),
        (true, false) => image.entrypoint.iter().chain(&c.args).cloned().collect(),
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    }
}

/// The environment: the image's, overridden by the container's.
pub fn env(c: &ContainerConfig, image: &Resolved, hostname: &str) -> Vec<String> {
    let mut out: Vec<(String, String)> = image
        .env
        .iter()
        .filter_map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(ek, _)| ek == k) {
        Some(slot) => slot.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    set("HOSTNAME", hostname);
    for (k, v) in &c.env {
        set(k, v);
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.push((
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ));
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn user(c: &ContainerConfig, image: &Resolved) -> (u32, u32) {
    if let Some((u, g)) = c.run_as {
        return (u, g.unwrap_or(0));
    }
    let mut parts = image.user.split(':');
    let u = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let g = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (u, g)
}

/// What the spec needs besides the container config and image.
pub struct PodFiles<'a> {
    /// The pod's hostname.
    pub hostname: &'a str,
    /// Files bind-mounted over `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`.
    pub etc: Vec<(&'static str, String)>,
    /// The pod's network namespace (`None`: the host's).
    pub netns: Option<String>,
    /// The cgroup path.
    pub cgroup: String,
}

/// Builds the spec.
pub fn build(c: &ContainerConfig, image: &Resolved, pod: &PodFiles<'_>) -> Value {
    let (uid, gid) = user(c, image);
    let cwd = c
        .working_dir
        .clone()
        .or_else(|| Some(image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for (dest, src) in &pod.etc {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate", "rw"]}));
    }
    for m in &c.mounts {
        let mode = if m.read_only { "ro" } else { "rw" };
        mounts.push(json!({"destination": m.container_path, "type": "bind", "source": m.host_path, "options": ["rbind", "rprivate", mode]}));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if let Some(ns) = &pod.netns {
        namespaces.push(json!({"type": "network", "path": ns}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(m) = c.memory_limit_bytes.filter(|m| *m > 0) {
        resources["memory"] = json!({"limit": m});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(r) = c.cpu_request_millis.filter(|r| *r > 0) {
        // Kubernetes' milli-CPU to shares: 1024 per core, at least 2
        cpu.insert("shares".into(), json!((r * 1024 / 1000).max(2)));
    }
    if let Some(l) = c.cpu_limit_millis.filter(|l| *l > 0) {
        cpu.insert("quota".into(), json!((l * 100).max(1000)));
        cpu.insert("period".into(), json!(100_000));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args(c, image),
            "env": env(c, image, pod.hostname),
            "cwd": cwd,
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024u64, "soft": 1024u64}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs"},
        "hostname": pod.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "resources": resources,
            "cgroupsPath": pod.cgroup,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                            "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// The spec of an extra process (exec) in a running container.
pub fn exec_process(container_spec: &Value, command: &[String]) -> Value {
    let p = &container_spec["process"];
    json!({
        "terminal": false,
        "user": p["user"].clone(),
        "args": command,
        "env": p["env"].clone(),
        "cwd": p["cwd"].as_str().unwrap_or("/"),
        "capabilities": p["capabilities"].clone(),
        "noNewPrivileges": true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Mount;
    use std::path::PathBuf;

    fn config() -> ContainerConfig {
        ContainerConfig {
            pod_uid: "u".into(),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            name: "c".into(),
            attempt: 0,
            image: "busybox".into(),
            command: vec![],
            args: vec!["-c".into(), "echo hi".into()],
            env: vec![("A".into(), "1".into()), ("PATH".into(), "/bin".into())],
            working_dir: None,
            run_as: Some((1000, None)),
            mounts: vec![Mount {
                container_path: "/data".into(),
                host_path: PathBuf::from("/var/x"),
                read_only: true,
            }],
            cpu_limit_millis: Some(500),
            cpu_request_millis: Some(250),
            memory_limit_bytes: Some(64 << 20),
            log_path: PathBuf::from("/tmp/log"),
            pod_ip: None,
            io: Default::default(),
        }
    }

    #[test]
    fn spec_follows_the_pod_and_the_image() {
        let image = Resolved {
            entrypoint: vec!["/bin/sh".into()],
            cmd: vec!["-i".into()],
            env: vec!["PATH=/usr/bin".into(), "LANG=C".into()],
            working_dir: "/work".into(),
            ..Default::default()
        };
        let s = build(
            &config(),
            &image,
            &PodFiles {
                hostname: "p",
                etc: vec![],
                netns: Some("/run/netns/kr-u".into()),
                cgroup: "/korral/x".into(),
            },
        );
        assert_eq!(s["process"]["args"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(s["process"]["cwd"], "/work");
        assert_eq!(s["process"]["user"]["uid"], 1000);
        let env = s["process"]["env"].as_array().expect("env");
        assert!(
            env.contains(&json!("PATH=/bin"))
                && env.contains(&json!("LANG=C"))
                && env.contains(&json!("A=1"))
        );
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(s["linux"]["resources"]["cpu"]["shares"], 256);
        let mounts = s["mounts"].as_array().expect("mounts");
        assert!(
            mounts
                .iter()
                .any(|m| m["destination"] == "/data" && m["options"][2] == "ro")
        );
        assert!(
            s["linux"]["namespaces"]
                .as_array()
                .expect("ns")
                .iter()
                .any(|n| n["path"] == "/run/netns/kr-u")
        );
    }
}
