//! Server-side printing: the `Table` (meta.k8s.io/v1) responses `kubectl get`
//! asks for, with the columns Kubernetes' printers show for each kind.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use schemas::KindInfo;

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p: Vec<&str> = part.split(';').map(str::trim).collect();
        p.contains(&"as=Table") && p.contains(&"g=meta.k8s.io")
    })
}

/// A column: name, type, priority (0 = always shown, 1 = `-o wide`).
type Column = (&'static str, &'static str, u8, &'static str);

fn columns(info: &KindInfo) -> Vec<Column> {
    let name = (
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = ("Age", "string", 0, "Time since the object was created.");
    let mut c = vec![name];
    match (info.group, info.kind) {
        ("", "Pod") => c.extend([
            ("Ready", "string", 0, "The number of containers that are ready."),
            ("Status", "string", 0, "The aggregate status of the containers in this pod."),
            ("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container restarted."),
            age,
            ("IP", "string", 1, "The IP address assigned to the pod."),
            ("Node", "string", 1, "The node the pod is bound to."),
            ("Nominated Node", "string", 1, "The node nominated by the scheduler, if any."),
            ("Readiness Gates", "string", 1, "Readiness gates satisfied."),
        ]),
        ("apps", "Deployment") => c.extend([
            ("Ready", "string", 0, "Number of ready pods out of desired."),
            ("Up-to-date", "integer", 0, "Pods running the current template."),
            ("Available", "integer", 0, "Pods available to users."),
            age,
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
            ("Selector", "string", 1, "Label selector for pods."),
        ]),
        ("apps", "ReplicaSet") => c.extend([
            ("Desired", "integer", 0, "Number of desired pods."),
            ("Current", "integer", 0, "Number of actual pods."),
            ("Ready", "integer", 0, "Number of ready pods."),
            age,
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
            ("Selector", "string", 1, "Label selector for pods."),
        ]),
        ("", "Service") => c.extend([
            ("Type", "string", 0, "The type of the service."),
            ("Cluster-IP", "string", 0, "The virtual IP of the service."),
            ("External-IP", "string", 0, "External IPs of the service."),
            ("Port(s)", "string", 0, "The ports the service exposes."),
            age,
            ("Selector", "string", 1, "The label selector of the backing pods."),
        ]),
        ("", "Endpoints") => c.extend([("Endpoints", "string", 0, "Endpoints of the service."), age]),
        ("", "ConfigMap") => c.extend([("Data", "integer", 0, "Number of keys."), age]),
        ("", "Secret") => c.extend([("Type", "string", 0, "The type of the secret."), ("Data", "integer", 0, "Number of keys."), age]),
        ("", "Namespace") => c.extend([("Status", "string", 0, "The phase of the namespace."), age]),
        ("", "Node") => c.extend([
            ("Status", "string", 0, "The status of the node."),
            ("Roles", "string", 0, "The roles of the node."),
            age,
            ("Version", "string", 0, "The node daemon's version."),
            ("Internal-IP", "string", 1, "The node's internal IP."),
            ("External-IP", "string", 1, "The node's external IP."),
            ("OS-Image", "string", 1, "The node's OS image."),
            ("Kernel-Version", "string", 1, "The node's kernel version."),
            ("Container-Runtime", "string", 1, "The node's container runtime."),
        ]),
        ("", "Event") => {
            c.clear();
            c.extend([
                ("Last Seen", "string", 0, "Time since the event was last seen."),
                ("Type", "string", 0, "Normal or Warning."),
                ("Reason", "string", 0, "Why the event happened."),
                ("Object", "string", 0, "The object the event is about."),
                ("Message", "string", 0, "What happened."),
                ("Subobject", "string", 1, "The part of the object."),
                ("Source", "string", 1, "Who reported it."),
                ("First Seen", "string", 1, "Time since the event was first seen."),
                ("Count", "string", 1, "How many times it happened."),
                ("Name", "string", 1, "The event's name."),
            ]);
        }
        ("coordination.k8s.io", "Lease") => c.extend([("Holder", "string", 0, "The holder."), age]),
        ("korral.dev", "GitSource") => c.extend([
            ("Source", "string", 0, "The repository URL or folder."),
            ("Revision", "string", 0, "The last applied revision."),
            ("Ready", "string", 0, "Whether the last sync succeeded."),
            ("Status", "string", 0, "The Ready condition's message."),
            age,
        ]),
        ("korral.dev", "DriftReport") => c.extend([
            ("Source", "string", 0, "The source compared."),
            ("Drifted", "string", 0, "Whether anything differs."),
            ("Missing", "integer", 0, "Objects missing from the cluster."),
            ("Extra", "integer", 0, "Objects the source no longer declares."),
            ("Modified", "integer", 0, "Objects whose fields differ."),
            age,
        ]),
        _ => c.push(age),
    }
    c
}

/// Kubernetes' short human durations: `5s`, `3m2s`, `10m`, `5h`, `2d3h`, `8d`, `2y`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        return if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if d < 8 {
        return if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        };
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    let y = d / 365;
    if d < 365 * 8 {
        return if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        };
    }
    format!("{y}y")
}

fn age_of(ts: Option<&str>) -> String {
    match ts.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => human_duration((Utc::now() - t.with_timezone(&Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut n = v;
    for p in path {
        n = n.get(*p)?;
    }
    n.as_str()
}

fn i(v: &Value, path: &[&str]) -> i64 {
    let mut n = v;
    for p in path {
        match n.get(*p) {
            Some(x) => n = x,
            None => return 0,
        }
    }
    n.as_i64().unwrap_or(0)
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    let mut n = v;
    for p in path {
        match n.get(*p) {
            Some(x) => n = x,
            None => return &[],
        }
    }
    n.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn none_if_empty(v: String) -> String {
    if v.is_empty() { "<none>".into() } else { v }
}

fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => String::new(),
            },
        );
    }
    none_if_empty(parts.join(","))
}

fn containers_and_images(spec: &Value) -> (String, String) {
    let cs = arr(spec, &["containers"]);
    let names: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    (names.join(","), images.join(","))
}

/// The pod STATUS column, as kubectl computes it.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = s(pod, &["status", "reason"])
        .or(s(pod, &["status", "phase"]))
        .unwrap_or("Pending")
        .to_string();
    let init_statuses = arr(pod, &["status", "initContainerStatuses"]);
    let init_total = arr(pod, &["spec", "initContainers"]).len();
    let mut initializing = false;
    for (n, c) in init_statuses.iter().enumerate() {
        if c.pointer("/state/terminated/exitCode")
            .and_then(Value::as_i64)
            == Some(0)
        {
            continue;
        }
        initializing = true;
        reason = if let Some(t) = c.pointer("/state/terminated") {
            match t.get("reason").and_then(Value::as_str) {
                Some(r) if !r.is_empty() => format!("Init:{r}"),
                _ => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                    Some(sig) => format!("Init:Signal:{sig}"),
                    None => format!(
                        "Init:ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    ),
                },
            }
        } else if let Some(w) = c
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            format!("Init:{w}")
        } else {
            format!("Init:{n}/{init_total}")
        };
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in arr(pod, &["status", "containerStatuses"]).iter().rev() {
            if let Some(w) = c
                .pointer("/state/waiting/reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                reason = w.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = match t.get("reason").and_then(Value::as_str) {
                    Some(r) if !r.is_empty() => r.to_string(),
                    _ => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                        Some(sig) => format!("Signal:{sig}"),
                        None => format!(
                            "ExitCode:{}",
                            t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                        ),
                    },
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if s(pod, &["metadata", "deletionTimestamp"]).is_some() {
        reason = if s(pod, &["status", "reason"]) == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

fn pod_cells(pod: &Value) -> Vec<Value> {
    let statuses = arr(pod, &["status", "containerStatuses"]);
    let total = arr(pod, &["spec", "containers"]).len();
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
        .sum();
    let last_restart = statuses
        .iter()
        .filter_map(|c| {
            c.pointer("/lastState/terminated/finishedAt")
                .and_then(Value::as_str)
        })
        .max();
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", age_of(Some(t))),
        _ => restarts.to_string(),
    };
    let gates = arr(pod, &["spec", "readinessGates"]);
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(pod, &["status", "conditions"]);
        let met = gates
            .iter()
            .filter(|g| {
                conds.iter().any(|c| {
                    c.get("type") == g.get("conditionType")
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(pod_status(pod)),
        json!(restarts),
        json!(age_of(s(pod, &["metadata", "creationTimestamp"]))),
        json!(s(pod, &["status", "podIP"]).unwrap_or("<none>")),
        json!(
            s(pod, &["spec", "nodeName"])
                .filter(|n| !n.is_empty())
                .unwrap_or("<none>")
        ),
        json!(s(pod, &["status", "nominatedNodeName"]).unwrap_or("<none>")),
        json!(gates_cell),
    ]
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) if np != 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    none_if_empty(ports.join(","))
}

fn endpoints_cell(ep: &Value) -> String {
    let mut all = Vec::new();
    for subset in arr(ep, &["subsets"]) {
        let ports: Vec<i64> = arr(subset, &["ports"])
            .iter()
            .filter_map(|p| p.get("port").and_then(Value::as_i64))
            .collect();
        for a in arr(subset, &["addresses"]) {
            let ip = a.get("ip").and_then(Value::as_str).unwrap_or("");
            if ports.is_empty() {
                all.push(ip.to_string());
            }
            for p in &ports {
                all.push(format!("{ip}:{p}"));
            }
        }
    }
    if all.is_empty() {
        return "<none>".into();
    }
    let more = all.len().saturating_sub(3);
    let mut cell = all.into_iter().take(3).collect::<Vec<_>>().join(",");
    if more > 0 {
        cell.push_str(&format!(" + {more} more..."));
    }
    cell
}

fn node_status(node: &Value) -> String {
    let ready = arr(node, &["status", "conditions"])
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
    let mut status = match ready.and_then(|c| c.get("status")).and_then(Value::as_str) {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(node: &Value) -> String {
    let labels = node.pointer("/metadata/labels").and_then(Value::as_object);
    let mut roles: Vec<String> = labels
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    none_if_empty(roles.join(","))
}

fn node_address(node: &Value, kind: &str) -> String {
    arr(node, &["status", "addresses"])
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some(kind))
        .and_then(|a| a.get("address").and_then(Value::as_str))
        .unwrap_or("<none>")
        .to_string()
}

fn condition(obj: &Value, ty: &str) -> Option<Value> {
    arr(obj, &["status", "conditions"])
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .cloned()
}

fn cells(info: &KindInfo, obj: &Value) -> Vec<Value> {
    let name = json!(s(obj, &["metadata", "name"]).unwrap_or(""));
    let age = json!(age_of(s(obj, &["metadata", "creationTimestamp"])));
    let mut c = vec![name];
    match (info.group, info.kind) {
        ("", "Pod") => c.extend(pod_cells(obj)),
        ("apps", "Deployment") => {
            let (names, images) =
                containers_and_images(obj.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            let desired = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            c.extend([
                json!(format!(
                    "{}/{desired}",
                    i(obj, &["status", "readyReplicas"])
                )),
                json!(i(obj, &["status", "updatedReplicas"])),
                json!(i(obj, &["status", "availableReplicas"])),
                age,
                json!(names),
                json!(images),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]);
        }
        ("apps", "ReplicaSet") => {
            let (names, images) =
                containers_and_images(obj.pointer("/spec/template/spec").unwrap_or(&Value::Null));
            c.extend([
                json!(
                    obj.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
                json!(i(obj, &["status", "replicas"])),
                json!(i(obj, &["status", "readyReplicas"])),
                age,
                json!(names),
                json!(images),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]);
        }
        ("", "Service") => {
            let ty = s(obj, &["spec", "type"]).unwrap_or("ClusterIP");
            let external: Vec<&str> = arr(obj, &["spec", "externalIPs"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let external = match (ty, external.is_empty()) {
                ("ExternalName", _) => s(obj, &["spec", "externalName"])
                    .unwrap_or("<none>")
                    .to_string(),
                ("LoadBalancer", true) => "<pending>".to_string(),
                (_, true) => "<none>".to_string(),
                (_, false) => external.join(","),
            };
            let selector = obj
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            c.extend([
                json!(ty),
                json!(
                    s(obj, &["spec", "clusterIP"])
                        .filter(|ip| !ip.is_empty())
                        .unwrap_or("<none>")
                ),
                json!(external),
                json!(service_ports(obj)),
                age,
                json!(none_if_empty(selector)),
            ]);
        }
        ("", "Endpoints") => c.extend([json!(endpoints_cell(obj)), age]),
        ("", "ConfigMap") => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + obj
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            c.extend([json!(n), age]);
        }
        ("", "Secret") => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            c.extend([json!(s(obj, &["type"]).unwrap_or("Opaque")), json!(n), age]);
        }
        ("", "Namespace") => {
            c.extend([json!(s(obj, &["status", "phase"]).unwrap_or("Active")), age])
        }
        ("", "Node") => c.extend([
            json!(node_status(obj)),
            json!(node_roles(obj)),
            age,
            json!(s(obj, &["status", "nodeInfo", "kubeletVersion"]).unwrap_or("")),
            json!(node_address(obj, "InternalIP")),
            json!(node_address(obj, "ExternalIP")),
            json!(s(obj, &["status", "nodeInfo", "osImage"]).unwrap_or("<unknown>")),
            json!(s(obj, &["status", "nodeInfo", "kernelVersion"]).unwrap_or("<unknown>")),
            json!(
                s(obj, &["status", "nodeInfo", "containerRuntimeVersion"]).unwrap_or("<unknown>")
            ),
        ]),
        ("", "Event") => {
            c.clear();
            let last = s(obj, &["lastTimestamp"])
                .or(s(obj, &["eventTime"]))
                .or(s(obj, &["metadata", "creationTimestamp"]));
            let first = s(obj, &["firstTimestamp"])
                .or(s(obj, &["eventTime"]))
                .or(s(obj, &["metadata", "creationTimestamp"]));
            let involved = obj.get("involvedObject").unwrap_or(&Value::Null);
            let object = format!(
                "{}/{}",
                involved
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_lowercase(),
                involved.get("name").and_then(Value::as_str).unwrap_or("")
            );
            c.extend([
                json!(age_of(last)),
                json!(s(obj, &["type"]).unwrap_or("")),
                json!(s(obj, &["reason"]).unwrap_or("")),
                json!(object),
                json!(s(obj, &["message"]).unwrap_or("").trim()),
                json!(
                    involved
                        .get("fieldPath")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                json!(
                    s(obj, &["source", "component"])
                        .or(s(obj, &["reportingComponent"]))
                        .unwrap_or("")
                ),
                json!(age_of(first)),
                json!(
                    obj.get("count")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                        .to_string()
                ),
                json!(s(obj, &["metadata", "name"]).unwrap_or("")),
            ]);
        }
        ("coordination.k8s.io", "Lease") => c.extend([
            json!(s(obj, &["spec", "holderIdentity"]).unwrap_or("")),
            age,
        ]),
        ("korral.dev", "GitSource") => {
            let ready = condition(obj, "Ready");
            let source = s(obj, &["spec", "url"])
                .or(s(obj, &["spec", "path"]))
                .unwrap_or("");
            let rev = s(obj, &["status", "lastAppliedRevision"])
                .map(|r| r.chars().take(12).collect::<String>())
                .unwrap_or_default();
            c.extend([
                json!(source),
                json!(none_if_empty(rev)),
                json!(
                    ready
                        .as_ref()
                        .and_then(|r| r.get("status"))
                        .and_then(Value::as_str)
                        .unwrap_or("Unknown")
                ),
                json!(
                    ready
                        .as_ref()
                        .and_then(|r| r.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                age,
            ]);
        }
        ("korral.dev", "DriftReport") => c.extend([
            json!(s(obj, &["spec", "source"]).unwrap_or("")),
            json!(
                obj.pointer("/status/drifted")
                    .and_then(Value::as_bool)
                    .map_or("Unknown".to_string(), |d| d.to_string())
            ),
            json!(arr(obj, &["status", "missing"]).len()),
            json!(arr(obj, &["status", "extra"]).len()),
            json!(arr(obj, &["status", "modified"]).len()),
            age,
        ]),
        _ => c.push(age),
    }
    c
}

/// Builds a Table of `items`. `include_object` is the `includeObject`
/// parameter: `None`, `Metadata` (default) or `Object`.
pub fn table(info: &KindInfo, items: &[Value], list_meta: Value, include_object: &str) -> Value {
    let defs: Vec<Value> = columns(info)
        .into_iter()
        .map(|(name, ty, priority, description)| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut row = json!({"cells": cells(info, obj)});
            match include_object {
                "None" => {}
                "Object" => row["object"] = obj.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(185), "3m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(30 * 86400), "30d");
    }

    #[test]
    fn pod_rows_show_ready_status_and_restarts() {
        let pod = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let pod_info = schemas::lookup("v1", "Pod").expect("pod");
        let t = table(pod_info, &[pod], json!({}), "Metadata");
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "2");
        assert_eq!(cells[5], "10.0.0.5");
        assert_eq!(cells[6], "n1");
        assert_eq!(
            t["columnDefinitions"].as_array().map(Vec::len),
            Some(cells.as_array().map_or(0, Vec::len))
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn every_kind_has_as_many_cells_as_columns() {
        for info in schemas::served() {
            let t = table(
                info,
                &[json!({"metadata": {"name": "x"}})],
                json!({}),
                "None",
            );
            assert_eq!(
                t["columnDefinitions"].as_array().map(Vec::len),
                t["rows"][0]["cells"].as_array().map(Vec::len),
                "{}",
                info.kind
            );
        }
    }
}
