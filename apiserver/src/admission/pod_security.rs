//! Pod Security admission, as kube-apiserver's built-in plugin applies the
//! Pod Security Standards from namespace labels
//! (`pod-security.kubernetes.io/enforce|warn|audit` = privileged, baseline or
//! restricted, with `-version`): pods that break the enforced level are
//! refused (403 `violates PodSecurity "restricted:latest": ...`), breaches of
//! the warn level become `Warning: would violate PodSecurity ...` on pods
//! and on the pod templates of workloads. Checks are listed in the order of
//! their ids, with kube's wording.

use serde_json::Value;

use crate::admission::Warnings;
use crate::errors::{ApiError, ApiResult};

/// A level and version from a namespace's labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    /// `baseline` or `restricted` (`privileged` checks nothing).
    pub level: String,
    /// The version label, `latest` when absent.
    pub version: String,
}

impl Level {
    fn label(&self) -> String {
        format!("{}:{}", self.level, self.version)
    }
}

/// The enforce and warn levels a namespace sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Levels {
    /// Refused when broken.
    pub enforce: Option<Level>,
    /// Warned about when broken.
    pub warn: Option<Level>,
}

/// The levels of a namespace object (none for a missing namespace).
pub fn levels(namespace: &Value) -> Levels {
    let label = |k: &str| {
        namespace
            .pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let level = |mode: &str| {
        let level = label(&format!("pod-security.kubernetes.io/{mode}"))?;
        if !matches!(level.as_str(), "baseline" | "restricted") {
            return None;
        }
        Some(Level {
            level,
            version: label(&format!("pod-security.kubernetes.io/{mode}-version"))
                .unwrap_or_else(|| "latest".into()),
        })
    };
    Levels {
        enforce: level("enforce"),
        warn: level("warn"),
    }
}

/// The pod spec and metadata of a pod or of a workload's template.
fn pod_parts<'a>(kind: &str, obj: &'a Value) -> Option<(&'a Value, &'a Value)> {
    let template = match kind {
        "Pod" => return Some((obj.get("metadata")?, obj.get("spec")?)),
        "CronJob" => obj.pointer("/spec/jobTemplate/spec/template")?,
        "PodTemplate" => obj.get("template")?,
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => obj.pointer("/spec/template")?,
        _ => return None,
    };
    Some((
        template.get("metadata").unwrap_or(&Value::Null),
        template.get("spec")?,
    ))
}

/// Pod Security for a write (`create` or an update): refuses a new pod
/// that breaks the enforced level, warns for pods and templates that break
/// the warn level (a pod's update is not checked: its spec is immutable but
/// for images and tolerations).
pub fn admit(
    levels: &Levels,
    kind: &str,
    create: bool,
    obj: &Value,
    warnings: &Warnings,
) -> ApiResult<()> {
    let Some((meta, spec)) = pod_parts(kind, obj) else {
        return Ok(());
    };
    if kind == "Pod" && !create {
        return Ok(());
    }
    if kind == "Pod"
        && let Some(level) = &levels.enforce
    {
        let broken = violations(&level.level, meta, spec);
        if !broken.is_empty() {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut e = ApiError::forbidden_message(format!(
                "pods {name:?} is forbidden: violates PodSecurity {:?}: {}",
                level.label(),
                broken.join(", ")
            ));
            e.details = Some(Box::new(crate::status::StatusDetails {
                name: Some(name.to_string()).filter(|n| !n.is_empty()),
                kind: Some("pods".into()),
                ..Default::default()
            }));
            return Err(e);
        }
    }
    if let Some(level) = &levels.warn {
        let broken = violations(&level.level, meta, spec);
        if !broken.is_empty() {
            warnings.add(format!(
                "would violate PodSecurity {:?}: {}",
                level.label(),
                broken.join(", ")
            ));
        }
    }
    Ok(())
}

fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .collect()
}

fn name(c: &Value) -> String {
    c.get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// `container "a"` or `containers "a", "b"`.
fn who(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    if names.len() == 1 {
        format!("container {}", quoted[0])
    } else {
        format!("containers {}", quoted.join(", "))
    }
}

/// Who must set a field that the pod may set for all its containers:
/// `pod or container "a"` unless the pod already does.
fn whom(pod_sets_it: bool, names: &[String]) -> String {
    if pod_sets_it {
        who(names)
    } else {
        format!("pod or {}", who(names))
    }
}

fn sc<'a>(c: &'a Value, field: &str) -> Option<&'a Value> {
    c.get("securityContext")?.get(field)
}

/// The capabilities baseline allows containers to add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The volume types restricted allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The safe sysctls baseline allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// The checks a pod fails at `level`, as "reason (detail)" in id order.
pub fn violations(level: &str, meta: &Value, spec: &Value) -> Vec<String> {
    let restricted = level == "restricted";
    if !restricted && level != "baseline" {
        return Vec::new();
    }
    let cs = containers(spec);
    let pod_sc = spec.get("securityContext").unwrap_or(&Value::Null);
    let mut out = Vec::new();

    // allowPrivilegeEscalation (restricted)
    if restricted {
        let bad: Vec<String> = cs
            .iter()
            .filter(|c| sc(c, "allowPrivilegeEscalation") != Some(&Value::Bool(false)))
            .map(|c| name(c))
            .collect();
        if !bad.is_empty() {
            out.push(format!(
                "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
                who(&bad)
            ));
        }
    }
    // capabilities: baseline limits adds; restricted allows only
    // NET_BIND_SERVICE to be added and requires dropping ALL
    let allowed = |cap: &str| {
        if restricted {
            cap == "NET_BIND_SERVICE"
        } else {
            BASELINE_CAPABILITIES.contains(&cap)
        }
    };
    let mut details = Vec::new();
    if restricted {
        let no_drop: Vec<String> = cs
            .iter()
            .filter(|c| {
                !sc(c, "capabilities")
                    .and_then(|k| k.get("drop"))
                    .and_then(Value::as_array)
                    .is_some_and(|d| d.iter().any(|x| x == "ALL"))
            })
            .map(|c| name(c))
            .collect();
        if !no_drop.is_empty() {
            details.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                who(&no_drop)
            ));
        }
    }
    for c in &cs {
        let extra: Vec<String> = sc(c, "capabilities")
            .and_then(|k| k.get("add"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|a| !allowed(a))
            .map(|a| format!("{a:?}"))
            .collect();
        if !extra.is_empty() {
            details.push(format!(
                "container {:?} must not include {} in securityContext.capabilities.add",
                name(c),
                extra.join(", ")
            ));
        }
    }
    if !details.is_empty() {
        let reason = if restricted {
            "unrestricted capabilities"
        } else {
            "non-default capabilities"
        };
        out.push(format!("{reason} ({})", details.join("; ")));
    }
    // hostNamespaces
    let hosts: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| spec.get(**f) == Some(&Value::Bool(true)))
        .map(|f| format!("{f}=true"))
        .collect();
    if !hosts.is_empty() {
        out.push(format!("host namespaces ({})", hosts.join(", ")));
    }
    // hostPathVolumes
    let volumes: Vec<&Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let host_paths: Vec<String> = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| format!("{:?}", name(v)))
        .collect();
    if !host_paths.is_empty() {
        let noun = if host_paths.len() == 1 {
            "volume"
        } else {
            "volumes"
        };
        out.push(format!(
            "hostPath volumes ({noun} {})",
            host_paths.join(", ")
        ));
    }
    // hostPorts
    let mut ports = Vec::new();
    for c in &cs {
        let used: Vec<String> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !used.is_empty() {
            let noun = if used.len() == 1 {
                "hostPort"
            } else {
                "hostPorts"
            };
            ports.push(format!(
                "container {:?} uses {noun} {}",
                name(c),
                used.join(", ")
            ));
        }
    }
    if !ports.is_empty() {
        out.push(format!("hostPort ({})", ports.join("; ")));
    }
    // privileged
    let privileged: Vec<String> = cs
        .iter()
        .filter(|c| sc(c, "privileged") == Some(&Value::Bool(true)))
        .map(|c| name(c))
        .collect();
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            who(&privileged)
        ));
    }
    // procMount
    let proc_mount: Vec<String> = cs
        .iter()
        .filter(|c| {
            sc(c, "procMount")
                .and_then(Value::as_str)
                .is_some_and(|m| m != "Default")
        })
        .map(|c| name(c))
        .collect();
    if !proc_mount.is_empty() {
        out.push(format!(
            "procMount ({} must not set securityContext.procMount to \"Unmasked\")",
            who(&proc_mount)
        ));
    }
    // restrictedVolumes
    if restricted {
        let mut bad = Vec::new();
        for v in &volumes {
            let Some(obj) = v.as_object() else { continue };
            if let Some(kind) = obj
                .keys()
                .find(|k| *k != "name" && !RESTRICTED_VOLUMES.contains(&k.as_str()))
            {
                bad.push(format!(
                    "volume {:?} uses restricted volume type {kind:?}",
                    name(v)
                ));
            }
        }
        if !bad.is_empty() {
            out.push(format!("restricted volume types ({})", bad.join(", ")));
        }
    }
    // runAsNonRoot (restricted)
    if restricted {
        let pod_ok = pod_sc.get("runAsNonRoot") == Some(&Value::Bool(true));
        let bad: Vec<String> = cs
            .iter()
            .filter(|c| match sc(c, "runAsNonRoot") {
                Some(Value::Bool(b)) => !b,
                _ => !pod_ok,
            })
            .map(|c| name(c))
            .collect();
        if !bad.is_empty() {
            out.push(format!(
                "runAsNonRoot != true ({} must set securityContext.runAsNonRoot=true)",
                whom(pod_ok, &bad)
            ));
        }
        let root: Vec<String> = cs
            .iter()
            .filter(|c| sc(c, "runAsUser").and_then(Value::as_i64) == Some(0))
            .map(|c| name(c))
            .collect();
        if pod_sc.get("runAsUser").and_then(Value::as_i64) == Some(0) {
            out.push("runAsUser=0 (pod must not set runAsUser=0)".into());
        } else if !root.is_empty() {
            out.push(format!(
                "runAsUser=0 ({} must not set runAsUser=0)",
                who(&root)
            ));
        }
    }
    // seccompProfile
    let seccomp = |v: &Value| {
        v.get("seccompProfile")
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let pod_type = seccomp(pod_sc);
    if restricted {
        let pod_ok = matches!(pod_type.as_deref(), Some("RuntimeDefault" | "Localhost"));
        let bad: Vec<String> = cs
            .iter()
            .filter(
                |c| match c.get("securityContext").and_then(&seccomp).as_deref() {
                    Some("RuntimeDefault" | "Localhost") => false,
                    Some(_) => true,
                    None => !pod_ok,
                },
            )
            .map(|c| name(c))
            .collect();
        if !bad.is_empty() {
            out.push(format!(
                "seccompProfile ({} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
                whom(pod_ok, &bad)
            ));
        }
    } else if pod_type.as_deref() == Some("Unconfined") {
        out.push(
            "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
                .into(),
        );
    }
    // sysctls
    let sysctls: Vec<String> = pod_sc
        .get("sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(str::to_string)
        .collect();
    if !sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", sysctls.join(", ")));
    }
    let _ = meta;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(c: Value) -> Value {
        json!({"containers": [c]})
    }

    #[test]
    fn a_plain_pod_breaks_restricted_as_kube_words_it() {
        let v = violations(
            "restricted",
            &json!({}),
            &spec(json!({"name": "nginx", "image": "nginx"})),
        );
        assert_eq!(
            v.join(", "),
            "allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert!(violations("baseline", &json!({}), &spec(json!({"name": "nginx"}))).is_empty());
        let hardened = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]});
        assert!(violations("restricted", &json!({}), &hardened).is_empty());
    }

    #[test]
    fn baseline_refuses_privilege_and_host_access() {
        let pod = json!({"hostNetwork": true, "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}},
                            "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
        assert_eq!(
            violations("baseline", &json!({}), &pod),
            [
                "non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add)",
                "host namespaces (hostNetwork=true)",
                "hostPath volumes (volume \"root\")",
                "hostPort (container \"a\" uses hostPort 8080)",
                "privileged (container \"a\" must not set securityContext.privileged=true)",
            ]
        );
    }
}
