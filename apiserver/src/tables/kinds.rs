//! The built-in kinds' printers, one function each, as kube-apiserver's
//! `pkg/printers/internalversion` prints them: the columns with their types,
//! priorities and descriptions, and each row's typed cells.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use schemas::KindInfo;

use crate::tables::{
    Column, age_col, age_of, arr, col, duration_between, human_duration, i, name_col, s,
};

type Row = Box<dyn Fn(&Value) -> (Vec<Value>, Option<Value>)>;

fn name(obj: &Value) -> Value {
    json!(s(obj, &["metadata", "name"]).unwrap_or(""))
}

fn age(obj: &Value) -> Value {
    json!(age_of(s(obj, &["metadata", "creationTimestamp"])))
}

fn plain(f: impl Fn(&Value) -> Vec<Value> + 'static) -> Row {
    Box::new(move |obj| (f(obj), None))
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(m: Option<&Value>) -> String {
    let mut pairs: Vec<String> = m
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// A label selector's string (`LabelSelectorAsSelector(...).String()`);
/// requirements sorted by key, values sorted.
fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        values.sort();
        let text = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".into(),
        };
        reqs.push((key, text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: `<none>` when empty.
fn format_selector(sel: Option<&Value>) -> String {
    let s = selector_string(sel);
    if s.is_empty() { "<none>".into() } else { s }
}

/// Container names and images of a pod spec.
fn containers(spec: Option<&Value>) -> (Value, Value) {
    let list = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = list
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = list
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    (json!(names.join(",")), json!(images.join(",")))
}

fn template_spec(obj: &Value) -> Option<&Value> {
    obj.pointer("/spec/template/spec")
}

const D_CONTAINERS: &str = "Names of each container in the template.";
const D_IMAGES: &str = "Images referenced by each container in the template.";

fn quantity_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

fn access_modes(list: &[Value]) -> String {
    let has = |m: &str| list.iter().any(|x| x == m);
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

fn first_condition_true(obj: &Value, path: &[&str], ty: &str) -> bool {
    arr(obj, path)
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// Load balancer ingress points: IPs or hostnames, deduplicated and sorted.
fn lb_ingress(obj: &Value) -> Vec<String> {
    let mut out: Vec<String> = arr(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|i| {
            i.get("ip")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .or_else(|| i.get("hostname").and_then(Value::as_str))
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn pod(obj: &Value) -> (Vec<Value>, Option<Value>) {
    let phase = s(obj, &["status", "phase"]).unwrap_or("");
    let mut reason = s(obj, &["status", "reason"])
        .filter(|r| !r.is_empty())
        .unwrap_or(phase)
        .to_string();
    let conditions = arr(obj, &["status", "conditions"]);
    if conditions.iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("PodScheduled")
            && c.get("reason").and_then(Value::as_str) == Some("SchedulingGated")
    }) {
        reason = "SchedulingGated".into();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    let init_specs = arr(obj, &["spec", "initContainers"]);
    let sidecar = |name: &str| {
        init_specs.iter().any(|c| {
            c.get("name").and_then(Value::as_str) == Some(name)
                && c.get("restartPolicy").and_then(Value::as_str) == Some("Always")
        })
    };
    let total = arr(obj, &["spec", "containers"]).len()
        + init_specs
            .iter()
            .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"))
            .count();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<String> = None;
    let mut last_sidecar_restart: Option<String> = None;
    let later = |a: &Option<String>, b: Option<&str>| -> Option<String> {
        match (a.as_deref(), b) {
            (Some(x), Some(y)) if y > x => Some(y.to_string()),
            (None, Some(y)) => Some(y.to_string()),
            _ => a.clone(),
        }
    };
    let mut initializing = false;
    let init_statuses = arr(obj, &["status", "initContainerStatuses"]);
    for (idx, cs) in init_statuses.iter().enumerate() {
        let count = cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        restarts += count;
        let finished = cs
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str);
        last_restart = later(&last_restart, finished);
        let cname = cs.get("name").and_then(Value::as_str).unwrap_or("");
        let is_sidecar = sidecar(cname);
        if is_sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(&last_sidecar_restart, finished);
        }
        if cs
            .pointer("/state/terminated/exitCode")
            .and_then(Value::as_i64)
            == Some(0)
        {
            continue;
        }
        if is_sidecar && cs.get("started") == Some(&Value::Bool(true)) {
            if cs.get("ready") == Some(&Value::Bool(true)) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = cs.pointer("/state/terminated") {
            let r = t.get("reason").and_then(Value::as_str).unwrap_or("");
            let signal = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
            let exit = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if signal != 0 {
                format!("Init:Signal:{signal}")
            } else {
                format!("Init:ExitCode:{exit}")
            };
        } else if let Some(w) = cs
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Initialized"))
        .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"));
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in arr(obj, &["status", "containerStatuses"]).iter().rev() {
            restarts += cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            last_restart = later(
                &last_restart,
                cs.pointer("/lastState/terminated/finishedAt")
                    .and_then(Value::as_str),
            );
            let waiting = cs
                .pointer("/state/waiting/reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty());
            let terminated = cs.pointer("/state/terminated");
            if let Some(w) = waiting {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                match t
                    .get("reason")
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                {
                    Some(r) => reason = r.to_string(),
                    None => {
                        let signal = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
                        reason = if signal != 0 {
                            format!("Signal:{signal}")
                        } else {
                            format!(
                                "ExitCode:{}",
                                t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                            )
                        };
                    }
                }
            } else if cs.get("ready") == Some(&Value::Bool(true))
                && cs.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if first_condition_true(obj, &["status", "conditions"], "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if deleting(obj) {
        if s(obj, &["status", "reason"]) == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".into();
        }
    }
    let restarts_text = match &last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", age_of(Some(t))),
        _ => restarts.to_string(),
    };
    let gates = arr(obj, &["spec", "readinessGates"]);
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| {
                let t = g.get("conditionType").and_then(Value::as_str).unwrap_or("");
                first_condition_true(obj, &["status", "conditions"], t)
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    let ip = arr(obj, &["status", "podIPs"])
        .first()
        .and_then(|p| p.get("ip"))
        .and_then(Value::as_str)
        .or_else(|| s(obj, &["status", "podIP"]))
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    (
        vec![
            name(obj),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts_text),
            age(obj),
            json!(ip),
            json!(
                s(obj, &["spec", "nodeName"])
                    .filter(|n| !n.is_empty())
                    .unwrap_or("<none>")
            ),
            json!(
                s(obj, &["status", "nominatedNodeName"])
                    .filter(|n| !n.is_empty())
                    .unwrap_or("<none>")
            ),
            json!(gates_text),
        ],
        row_conditions,
    )
}

fn service_external_ip(obj: &Value) -> String {
    let external: Vec<String> = arr(obj, &["spec", "externalIPs"])
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    match s(obj, &["spec", "type"]).unwrap_or("") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut lb = lb_ingress(obj);
            if !external.is_empty() {
                lb.extend(external);
                lb.join(",")
            } else if !lb.is_empty() {
                lb.join(",")
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => s(obj, &["spec", "externalName"]).unwrap_or("").to_string(),
        _ => "<unknown>".into(),
    }
}

fn service_ports(obj: &Value) -> String {
    let ports: Vec<String> = arr(obj, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64).filter(|n| *n > 0) {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

fn endpoints_text(obj: &Value) -> String {
    let subsets = arr(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addrs = arr(ss, &["addresses"]);
        let ports = arr(ss, &["ports"]);
        if ports.is_empty() {
            count += addrs.len();
            for a in addrs {
                if list.len() == 3 {
                    more = true;
                    break;
                }
                list.push(
                    a.get("ip")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                );
            }
            continue;
        }
        for p in ports {
            count += addrs.len();
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            for a in addrs {
                if list.len() == 3 {
                    more = true;
                    break;
                }
                let ip = a.get("ip").and_then(Value::as_str).unwrap_or("");
                list.push(if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                });
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - 3)
    } else {
        ret
    }
}

fn event(obj: &Value) -> Vec<Value> {
    // events.k8s.io/v1 objects are read with the core field names
    let field = |core: &str, events: &str| obj.get(core).or_else(|| obj.get(events));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let micro_age = |v: Option<&Value>| age_of(v.and_then(Value::as_str));
    let first_ts = text(field("firstTimestamp", "deprecatedFirstTimestamp"));
    let first = match &first_ts {
        Some(t) => age_of(Some(t)),
        None => micro_age(obj.get("eventTime")),
    };
    let mut last = match text(field("lastTimestamp", "deprecatedLastTimestamp")) {
        Some(t) => age_of(Some(&t)),
        None => first.clone(),
    };
    let mut count = field("count", "deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(series) = obj.get("series") {
        last = micro_age(series.get("lastObservedTime"));
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let involved = field("involvedObject", "regarding")
        .cloned()
        .unwrap_or_default();
    let kind = involved
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let object = match involved
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let source = field("source", "deprecatedSource")
        .cloned()
        .unwrap_or_default();
    let component = source
        .get("component")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .or_else(|| field("reportingComponent", "reportingController").and_then(Value::as_str))
        .unwrap_or("");
    let instance = source
        .get("host")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .or_else(|| obj.get("reportingInstance").and_then(Value::as_str))
        .unwrap_or("");
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    let message = field("message", "note")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    vec![
        json!(last),
        json!(s(obj, &["type"]).unwrap_or("")),
        json!(s(obj, &["reason"]).unwrap_or("")),
        json!(object),
        json!(
            involved
                .get("fieldPath")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        json!(source),
        json!(message),
        json!(first),
        json!(count),
        name(obj),
    ]
}

fn storage_class_of(obj: &Value) -> String {
    obj.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .or_else(|| s(obj, &["spec", "storageClassName"]))
        .unwrap_or("")
        .to_string()
}

fn hpa_targets(obj: &Value) -> String {
    let specs = arr(obj, &["spec", "metrics"]);
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses = arr(obj, &["status", "currentMetrics"]);
    let q = |v: Option<&Value>| v.map(|x| quantity_text(Some(x)));
    let mut list = Vec::new();
    for (idx, spec) in specs.iter().enumerate() {
        let st = statuses.get(idx);
        let item = match spec.get("type").and_then(Value::as_str).unwrap_or("") {
            t @ ("External" | "Object") => {
                let key = if t == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = spec.get(key).and_then(|m| m.get("target"));
                let cur_src = st.and_then(|s| s.get(key)).and_then(|m| m.get("current"));
                if let Some(avg) = target.and_then(|t| t.get("averageValue")) {
                    let cur = q(cur_src.and_then(|c| c.get("averageValue")))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{cur}/{} (avg)", quantity_text(Some(avg)))
                } else {
                    let cur = q(cur_src.and_then(|c| c.get("value")))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!(
                        "{cur}/{}",
                        q(target.and_then(|t| t.get("value"))).unwrap_or_else(|| "<nil>".into())
                    )
                }
            }
            "Pods" => {
                let cur = q(st.and_then(|s| s.pointer("/pods/current/averageValue")))
                    .unwrap_or_else(|| "<unknown>".into());
                format!(
                    "{cur}/{}",
                    q(spec.pointer("/pods/target/averageValue")).unwrap_or_else(|| "<nil>".into())
                )
            }
            t @ ("Resource" | "ContainerResource") => {
                let key = if t == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let m = spec.get(key).cloned().unwrap_or_default();
                let rname = m.get("name").and_then(Value::as_str).unwrap_or("");
                let current = st.and_then(|s| s.get(key)).and_then(|c| c.get("current"));
                if let Some(avg) = m.pointer("/target/averageValue") {
                    let cur = q(current.and_then(|c| c.get("averageValue")))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{rname}: {cur}/{}", quantity_text(Some(avg)))
                } else {
                    let cur = current
                        .and_then(|c| c.get("averageUtilization"))
                        .and_then(Value::as_i64)
                        .map_or_else(|| "<unknown>".to_string(), |u| format!("{u}%"));
                    let tgt = m
                        .pointer("/target/averageUtilization")
                        .and_then(Value::as_i64)
                        .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
                    format!("{rname}: {cur}/{tgt}")
                }
            }
            _ => "<unknown type>".into(),
        };
        list.push(item);
    }
    let count = list.len();
    if count > 2 {
        list.truncate(2);
        format!("{} + {} more...", list.join(", "), count - 2)
    } else {
        list.join(", ")
    }
}

fn int_or_string_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

fn list_with_more(list: Vec<String>, count: usize) -> String {
    let shown: Vec<String> = list.into_iter().take(3).collect();
    let mut out = shown.join(",");
    if count > 3 {
        out.push_str(&format!(" + {} more...", count - 3));
    }
    if out.is_empty() {
        "<unset>".into()
    } else {
        out
    }
}

fn bool_text(v: Option<&Value>) -> String {
    match v.and_then(Value::as_bool) {
        Some(true) => "True".into(),
        Some(false) => "False".into(),
        None => "<unset>".into(),
    }
}

fn binding(obj: &Value) -> Vec<Value> {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut sas = Vec::new();
    for sub in arr(obj, &["subjects"]) {
        let n = sub.get("name").and_then(Value::as_str).unwrap_or("");
        match sub.get("kind").and_then(Value::as_str).unwrap_or("") {
            "User" => users.push(n.to_string()),
            "Group" => groups.push(n.to_string()),
            "ServiceAccount" => sas.push(format!(
                "{}/{n}",
                sub.get("namespace").and_then(Value::as_str).unwrap_or("")
            )),
            _ => {}
        }
    }
    vec![
        name(obj),
        json!(format!(
            "{}/{}",
            s(obj, &["roleRef", "kind"]).unwrap_or(""),
            s(obj, &["roleRef", "name"]).unwrap_or("")
        )),
        age(obj),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

/// The printer of a built-in kind, or `None` for the default convertor.
pub(super) fn printer(info: &KindInfo) -> Option<(Vec<Column>, Row)> {
    let n = name_col;
    let a = age_col;
    Some(match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => (
            vec![
                n(),
                col(
                    "Ready",
                    "string",
                    0,
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                col(
                    "Status",
                    "string",
                    0,
                    "The aggregate status of the containers in this pod.",
                ),
                col(
                    "Restarts",
                    "string",
                    0,
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ),
                a(),
                col(
                    "IP",
                    "string",
                    1,
                    "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                ),
                col(
                    "Node",
                    "string",
                    1,
                    "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
                ),
                col(
                    "Nominated Node",
                    "string",
                    1,
                    "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
                ),
                col(
                    "Readiness Gates",
                    "string",
                    1,
                    "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
                ),
            ],
            Box::new(pod),
        ),
        ("", "PodTemplate") => (
            vec![
                n(),
                col("Containers", "string", 0, D_CONTAINERS),
                col("Images", "string", 0, D_IMAGES),
                col(
                    "Pod Labels",
                    "string",
                    0,
                    "The labels for the pod template.",
                ),
            ],
            plain(|o| {
                let (names, images) = containers(o.pointer("/template/spec"));
                vec![
                    name(o),
                    names,
                    images,
                    json!(format_labels(o.pointer("/template/metadata/labels"))),
                ]
            }),
        ),
        ("", "Node") => (
            vec![
                n(),
                col("Status", "string", 0, "The status of the node"),
                col("Roles", "string", 0, "The roles of the node"),
                a(),
                col(
                    "Version",
                    "string",
                    0,
                    "Kubelet Version reported by the node.",
                ),
                col(
                    "Internal-IP",
                    "string",
                    1,
                    "List of addresses reachable to the node.",
                ),
                col(
                    "External-IP",
                    "string",
                    1,
                    "List of addresses reachable to the node.",
                ),
                col(
                    "OS-Image",
                    "string",
                    1,
                    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                ),
                col(
                    "Kernel-Version",
                    "string",
                    1,
                    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                ),
                col(
                    "Container-Runtime",
                    "string",
                    1,
                    "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                ),
            ],
            plain(|o| {
                let mut ready: Option<&str> = None;
                for c in arr(o, &["status", "conditions"]) {
                    if c.get("type").and_then(Value::as_str) == Some("Ready") {
                        ready = c.get("status").and_then(Value::as_str);
                    }
                }
                let mut status = match ready {
                    Some("True") => "Ready".to_string(),
                    Some(_) => "NotReady".to_string(),
                    None => "Unknown".to_string(),
                };
                if o.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
                    status.push_str(",SchedulingDisabled");
                }
                let mut roles: Vec<String> = o
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| {
                                if let Some(r) = k
                                    .strip_prefix("node-role.kubernetes.io/")
                                    .filter(|r| !r.is_empty())
                                {
                                    Some(r.to_string())
                                } else if k == "kubernetes.io/role" {
                                    v.as_str().filter(|v| !v.is_empty()).map(str::to_string)
                                } else {
                                    None
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                roles.sort();
                roles.dedup();
                let addr = |t: &str| {
                    arr(o, &["status", "addresses"])
                        .iter()
                        .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
                        .and_then(|a| a.get("address"))
                        .and_then(Value::as_str)
                        .unwrap_or("<none>")
                        .to_string()
                };
                let info = |f: &str| {
                    s(o, &["status", "nodeInfo", f])
                        .filter(|v| !v.is_empty())
                        .unwrap_or("<unknown>")
                        .to_string()
                };
                vec![
                    name(o),
                    json!(status),
                    json!(if roles.is_empty() {
                        "<none>".to_string()
                    } else {
                        roles.join(",")
                    }),
                    age(o),
                    json!(s(o, &["status", "nodeInfo", "kubeletVersion"]).unwrap_or("")),
                    json!(addr("InternalIP")),
                    json!(addr("ExternalIP")),
                    json!(info("osImage")),
                    json!(info("kernelVersion")),
                    json!(info("containerRuntimeVersion")),
                ]
            }),
        ),
        ("", "Namespace") => (
            vec![
                n(),
                col("Status", "string", 0, "The status of the namespace"),
                a(),
            ],
            plain(|o| {
                vec![
                    name(o),
                    json!(s(o, &["status", "phase"]).unwrap_or("")),
                    age(o),
                ]
            }),
        ),
        ("", "Service") => (
            vec![
                n(),
                col(
                    "Type",
                    "string",
                    0,
                    "type determines how the Service is exposed.",
                ),
                col(
                    "Cluster-IP",
                    "string",
                    0,
                    "clusterIP is the IP address of the service and is usually assigned randomly.",
                ),
                col(
                    "External-IP",
                    "string",
                    0,
                    "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                ),
                col(
                    "Port(s)",
                    "string",
                    0,
                    "The list of ports that are exposed by this service.",
                ),
                a(),
                col(
                    "Selector",
                    "string",
                    1,
                    "Route service traffic to pods with label keys and values matching this selector.",
                ),
            ],
            plain(|o| {
                let cluster_ip = arr(o, &["spec", "clusterIPs"])
                    .first()
                    .and_then(Value::as_str)
                    .or_else(|| s(o, &["spec", "clusterIP"]).filter(|i| !i.is_empty()))
                    .unwrap_or("<none>");
                vec![
                    name(o),
                    json!(s(o, &["spec", "type"]).unwrap_or("")),
                    json!(cluster_ip),
                    json!(service_external_ip(o)),
                    json!(service_ports(o)),
                    age(o),
                    json!(format_labels(o.pointer("/spec/selector"))),
                ]
            }),
        ),
        ("", "Endpoints") => (
            vec![
                n(),
                col(
                    "Endpoints",
                    "string",
                    0,
                    "The set of all endpoints is the union of all subsets.",
                ),
                a(),
            ],
            plain(|o| vec![name(o), json!(endpoints_text(o)), age(o)]),
        ),
        ("", "ConfigMap") => (
            vec![
                n(),
                col("Data", "string", 0, "Data contains the configuration data."),
                a(),
            ],
            plain(|o| {
                let count = o
                    .get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
                    + o.get("binaryData")
                        .and_then(Value::as_object)
                        .map_or(0, |m| m.len());
                vec![name(o), json!(count), age(o)]
            }),
        ),
        ("", "Secret") => (
            vec![
                n(),
                col(
                    "Type",
                    "string",
                    0,
                    "Used to facilitate programmatic handling of secret data.",
                ),
                col("Data", "string", 0, "Data contains the secret data."),
                a(),
            ],
            plain(|o| {
                let count = o
                    .get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
                vec![
                    name(o),
                    json!(s(o, &["type"]).unwrap_or("Opaque")),
                    json!(count),
                    age(o),
                ]
            }),
        ),
        ("", "Event") | ("events.k8s.io", "Event") => (
            vec![
                col(
                    "Last Seen",
                    "string",
                    0,
                    "The time at which the most recent occurrence of this event was recorded.",
                ),
                col(
                    "Type",
                    "string",
                    0,
                    "Type of this event (Normal, Warning), new types could be added in the future",
                ),
                col(
                    "Reason",
                    "string",
                    0,
                    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                ),
                col(
                    "Object",
                    "string",
                    0,
                    "The object that this event is about.",
                ),
                col(
                    "Subobject",
                    "string",
                    1,
                    "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
                ),
                col(
                    "Source",
                    "string",
                    1,
                    "The component reporting this event. Should be a short machine understandable string.",
                ),
                col(
                    "Message",
                    "string",
                    0,
                    "A human-readable description of the status of this operation.",
                ),
                col(
                    "First Seen",
                    "string",
                    1,
                    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
                ),
                col(
                    "Count",
                    "string",
                    1,
                    "The number of times this event has occurred.",
                ),
                Column { priority: 1, ..n() },
            ],
            plain(event),
        ),
        ("", "ServiceAccount") => (
            vec![
                n(),
                col(
                    "Secrets",
                    "string",
                    0,
                    "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                ),
                a(),
            ],
            plain(|o| vec![name(o), json!(arr(o, &["secrets"]).len()), age(o)]),
        ),
        ("", "PersistentVolume") => (
            vec![
                n(),
                col(
                    "Capacity",
                    "string",
                    0,
                    "capacity is the description of the persistent volume's resources and capacity.",
                ),
                col(
                    "Access Modes",
                    "string",
                    0,
                    "accessModes contains all ways the volume can be mounted.",
                ),
                col(
                    "Reclaim Policy",
                    "string",
                    0,
                    "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
                ),
                col(
                    "Status",
                    "string",
                    0,
                    "phase indicates if a volume is available, bound to a claim, or released by a claim.",
                ),
                col(
                    "Claim",
                    "string",
                    0,
                    "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
                ),
                col("StorageClass", "string", 0, "StorageClass of the pv"),
                col(
                    "VolumeAttributesClass",
                    "string",
                    0,
                    "VolumeAttributesClass of the pv",
                ),
                col(
                    "Reason",
                    "string",
                    0,
                    "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
                ),
                a(),
                col(
                    "VolumeMode",
                    "string",
                    1,
                    "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
                ),
            ],
            plain(|o| {
                let claim = o.pointer("/spec/claimRef").map_or(String::new(), |c| {
                    format!(
                        "{}/{}",
                        c.get("namespace").and_then(Value::as_str).unwrap_or(""),
                        c.get("name").and_then(Value::as_str).unwrap_or("")
                    )
                });
                let status = if deleting(o) {
                    "Terminating"
                } else {
                    s(o, &["status", "phase"]).unwrap_or("")
                };
                vec![
                    name(o),
                    json!(quantity_text(o.pointer("/spec/capacity/storage"))),
                    json!(access_modes(arr(o, &["spec", "accessModes"]))),
                    json!(s(o, &["spec", "persistentVolumeReclaimPolicy"]).unwrap_or("")),
                    json!(status),
                    json!(claim),
                    json!(storage_class_of(o)),
                    json!(s(o, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
                    json!(s(o, &["status", "reason"]).unwrap_or("")),
                    age(o),
                    json!(s(o, &["spec", "volumeMode"]).unwrap_or("<unset>")),
                ]
            }),
        ),
        ("", "PersistentVolumeClaim") => (
            vec![
                n(),
                col(
                    "Status",
                    "string",
                    0,
                    "phase represents the current phase of PersistentVolumeClaim.",
                ),
                col(
                    "Volume",
                    "string",
                    0,
                    "volumeName is the binding reference to the PersistentVolume backing this claim.",
                ),
                col(
                    "Capacity",
                    "string",
                    0,
                    "capacity represents the actual resources of the underlying volume.",
                ),
                col(
                    "Access Modes",
                    "string",
                    0,
                    "accessModes contains the actual access modes the volume backing the PVC has.",
                ),
                col("StorageClass", "string", 0, "StorageClass of the pvc"),
                col(
                    "VolumeAttributesClass",
                    "string",
                    0,
                    "VolumeAttributesClass of the pvc",
                ),
                a(),
                col(
                    "VolumeMode",
                    "string",
                    1,
                    "volumeMode defines what type of volume is required by the claim.",
                ),
            ],
            plain(|o| {
                let bound = s(o, &["spec", "volumeName"]).filter(|v| !v.is_empty());
                let (capacity, modes) = match bound {
                    Some(_) => (
                        quantity_text(o.pointer("/status/capacity/storage")),
                        access_modes(arr(o, &["status", "accessModes"])),
                    ),
                    None => (String::new(), String::new()),
                };
                let status = if deleting(o) {
                    "Terminating"
                } else {
                    s(o, &["status", "phase"]).unwrap_or("")
                };
                vec![
                    name(o),
                    json!(status),
                    json!(bound.unwrap_or("")),
                    json!(capacity),
                    json!(modes),
                    json!(storage_class_of(o)),
                    json!(s(o, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
                    age(o),
                    json!(s(o, &["spec", "volumeMode"]).unwrap_or("<unset>")),
                ]
            }),
        ),
        ("", "ResourceQuota") => (
            vec![
                n(),
                col(
                    "Request",
                    "string",
                    0,
                    "Request represents a minimum amount of cpu/memory that a container may consume.",
                ),
                col(
                    "Limit",
                    "string",
                    0,
                    "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                ),
                a(),
            ],
            plain(|o| {
                let hard: BTreeMap<String, Value> = o
                    .pointer("/status/hard")
                    .and_then(Value::as_object)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                let mut request = Vec::new();
                let mut limit = Vec::new();
                for (k, h) in &hard {
                    let used = quantity_text(o.pointer(&format!(
                        "/status/used/{}",
                        k.replace('~', "~0").replace('/', "~1")
                    )));
                    let piece = format!("{k}: {used}/{}", quantity_text(Some(h)));
                    let parts: Vec<&str> = k.split('.').collect();
                    if parts.len() > 1 && parts[0] == "limits" {
                        limit.push(piece);
                    } else {
                        request.push(piece);
                    }
                }
                vec![
                    name(o),
                    json!(request.join(", ")),
                    json!(limit.join(", ")),
                    age(o),
                ]
            }),
        ),
        ("", "ReplicationController") | ("apps", "ReplicaSet") => {
            let rc = info.kind == "ReplicationController";
            (
                vec![
                    n(),
                    col(
                        "Desired",
                        "integer",
                        0,
                        "Replicas is the number of desired replicas.",
                    ),
                    col(
                        "Current",
                        "integer",
                        0,
                        "Replicas is the most recently observed number of replicas.",
                    ),
                    col(
                        "Ready",
                        "integer",
                        0,
                        "The number of ready replicas for this replica set.",
                    ),
                    a(),
                    col("Containers", "string", 1, D_CONTAINERS),
                    col("Images", "string", 1, D_IMAGES),
                    col(
                        "Selector",
                        "string",
                        1,
                        "Selector is a label query over pods that should match the replica count.",
                    ),
                ],
                plain(move |o| {
                    let (names, images) = containers(template_spec(o));
                    let selector = if rc {
                        format_labels(o.pointer("/spec/selector"))
                    } else {
                        format_selector(o.pointer("/spec/selector"))
                    };
                    vec![
                        name(o),
                        json!(
                            o.pointer("/spec/replicas")
                                .and_then(Value::as_i64)
                                .unwrap_or(1)
                        ),
                        json!(i(o, &["status", "replicas"])),
                        json!(i(o, &["status", "readyReplicas"])),
                        age(o),
                        names,
                        images,
                        json!(selector),
                    ]
                }),
            )
        }
        ("apps", "Deployment") => (
            vec![
                n(),
                col("Ready", "string", 0, "Number of the pod with ready state"),
                col(
                    "Up-to-date",
                    "string",
                    0,
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
                col(
                    "Available",
                    "string",
                    0,
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                a(),
                col("Containers", "string", 1, D_CONTAINERS),
                col("Images", "string", 1, D_IMAGES),
                col(
                    "Selector",
                    "string",
                    1,
                    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                ),
            ],
            plain(|o| {
                let (names, images) = containers(template_spec(o));
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        i(o, &["status", "readyReplicas"]),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(i(o, &["status", "updatedReplicas"])),
                    json!(i(o, &["status", "availableReplicas"])),
                    age(o),
                    names,
                    images,
                    json!(selector_string(o.pointer("/spec/selector"))),
                ]
            }),
        ),
        ("apps", "StatefulSet") => (
            vec![
                n(),
                col("Ready", "string", 0, "Number of the pod with ready state"),
                a(),
                col("Containers", "string", 1, D_CONTAINERS),
                col("Images", "string", 1, D_IMAGES),
            ],
            plain(|o| {
                let (names, images) = containers(template_spec(o));
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        i(o, &["status", "readyReplicas"]),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    age(o),
                    names,
                    images,
                ]
            }),
        ),
        ("apps", "DaemonSet") => (
            vec![
                n(),
                col(
                    "Desired",
                    "integer",
                    0,
                    "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
                ),
                col(
                    "Current",
                    "integer",
                    0,
                    "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
                ),
                col(
                    "Ready",
                    "integer",
                    0,
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
                ),
                col(
                    "Up-to-date",
                    "integer",
                    0,
                    "The total number of nodes that are running updated daemon pod",
                ),
                col(
                    "Available",
                    "integer",
                    0,
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
                ),
                col(
                    "Node Selector",
                    "string",
                    0,
                    "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
                ),
                a(),
                col("Containers", "string", 1, D_CONTAINERS),
                col("Images", "string", 1, D_IMAGES),
                col(
                    "Selector",
                    "string",
                    1,
                    "A label query over pods that are managed by the daemon set.",
                ),
            ],
            plain(|o| {
                let (names, images) = containers(template_spec(o));
                vec![
                    name(o),
                    json!(i(o, &["status", "desiredNumberScheduled"])),
                    json!(i(o, &["status", "currentNumberScheduled"])),
                    json!(i(o, &["status", "numberReady"])),
                    json!(i(o, &["status", "updatedNumberScheduled"])),
                    json!(i(o, &["status", "numberAvailable"])),
                    json!(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
                    age(o),
                    names,
                    images,
                    json!(format_selector(o.pointer("/spec/selector"))),
                ]
            }),
        ),
        ("apps", "ControllerRevision") => (
            vec![
                n(),
                col("Controller", "string", 0, "Controller of the object"),
                col(
                    "Revision",
                    "string",
                    0,
                    "Revision indicates the revision of the state represented by Data.",
                ),
                a(),
            ],
            plain(|o| {
                let owner = arr(o, &["metadata", "ownerReferences"])
                    .iter()
                    .find(|r| r.get("controller") == Some(&Value::Bool(true)));
                let controller = match owner {
                    None => "<none>".to_string(),
                    Some(r) => {
                        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
                        let n = r.get("name").and_then(Value::as_str).unwrap_or("");
                        let group = r
                            .get("apiVersion")
                            .and_then(Value::as_str)
                            .and_then(|v| v.rsplit_once('/').map(|(g, _)| g))
                            .unwrap_or("");
                        if kind.is_empty() && group.is_empty() {
                            n.to_string()
                        } else if group.is_empty() {
                            format!("{}/{n}", kind.to_lowercase())
                        } else {
                            format!("{}/{n}", format!("{kind}.{group}").to_lowercase())
                        }
                    }
                };
                vec![
                    name(o),
                    json!(controller),
                    json!(i(o, &["revision"])),
                    age(o),
                ]
            }),
        ),
        ("batch", "Job") => (
            vec![
                n(),
                col("Status", "string", 0, "Status of the job."),
                col(
                    "Completions",
                    "string",
                    0,
                    "The number of pods which reached phase Succeeded.",
                ),
                col(
                    "Duration",
                    "string",
                    0,
                    "Time required to complete the job.",
                ),
                a(),
                col("Containers", "string", 1, D_CONTAINERS),
                col("Images", "string", 1, D_IMAGES),
                col(
                    "Selector",
                    "string",
                    1,
                    "A label query over pods that should match the pod count.",
                ),
            ],
            plain(|o| {
                let cond = |t: &str| first_condition_true(o, &["status", "conditions"], t);
                let status = if cond("Complete") {
                    "Complete"
                } else if cond("Failed") {
                    "Failed"
                } else if deleting(o) {
                    "Terminating"
                } else if cond("Suspended") {
                    "Suspended"
                } else if cond("FailureTarget") {
                    "FailureTarget"
                } else {
                    "Running"
                };
                let succeeded = i(o, &["status", "succeeded"]);
                let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
                    Some(c) => format!("{succeeded}/{c}"),
                    None => match o.pointer("/spec/parallelism").and_then(Value::as_i64) {
                        Some(p) if p > 1 => format!("{succeeded}/1 of {p}"),
                        _ => format!("{succeeded}/1"),
                    },
                };
                let duration = match s(o, &["status", "startTime"]) {
                    None => String::new(),
                    Some(start) => duration_between(start, s(o, &["status", "completionTime"])),
                };
                let (names, images) = containers(template_spec(o));
                vec![
                    name(o),
                    json!(status),
                    json!(completions),
                    json!(duration),
                    age(o),
                    names,
                    images,
                    json!(format_selector(o.pointer("/spec/selector"))),
                ]
            }),
        ),
        ("batch", "CronJob") => (
            vec![
                n(),
                col(
                    "Schedule",
                    "string",
                    0,
                    "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
                ),
                col(
                    "Timezone",
                    "string",
                    0,
                    "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
                ),
                col(
                    "Suspend",
                    "boolean",
                    0,
                    "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.",
                ),
                col(
                    "Active",
                    "integer",
                    0,
                    "A list of pointers to currently running jobs.",
                ),
                col(
                    "Last Schedule",
                    "string",
                    0,
                    "Information when was the last time the job was successfully scheduled.",
                ),
                a(),
                col("Containers", "string", 1, D_CONTAINERS),
                col("Images", "string", 1, D_IMAGES),
                col(
                    "Selector",
                    "string",
                    1,
                    "A label query over pods that should match the pod count.",
                ),
            ],
            plain(|o| {
                let (names, images) = containers(o.pointer("/spec/jobTemplate/spec/template/spec"));
                let last = match s(o, &["status", "lastScheduleTime"]) {
                    Some(t) => age_of(Some(t)),
                    None => "<none>".into(),
                };
                vec![
                    name(o),
                    json!(s(o, &["spec", "schedule"]).unwrap_or("")),
                    json!(s(o, &["spec", "timeZone"]).unwrap_or("<none>")),
                    json!(bool_text(o.pointer("/spec/suspend"))),
                    json!(arr(o, &["status", "active"]).len()),
                    json!(last),
                    age(o),
                    names,
                    images,
                    json!(format_selector(
                        o.pointer("/spec/jobTemplate/spec/selector")
                    )),
                ]
            }),
        ),
        ("autoscaling", "HorizontalPodAutoscaler") => (
            vec![
                n(),
                col(
                    "Reference",
                    "string",
                    0,
                    "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource.",
                ),
                col(
                    "Targets",
                    "string",
                    0,
                    "metrics contains the specifications for which to use to calculate the desired replica count.",
                ),
                col(
                    "MinPods",
                    "string",
                    0,
                    "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
                ),
                col(
                    "MaxPods",
                    "string",
                    0,
                    "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
                ),
                col(
                    "Replicas",
                    "string",
                    0,
                    "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
                ),
                a(),
            ],
            plain(|o| {
                // autoscaling/v1 objects print as their v2 form
                let v2 = if o.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1") {
                    schemas::conversion::hpa(o.clone(), "autoscaling/v1", "autoscaling/v2")
                        .unwrap_or_else(|_| o.clone())
                } else {
                    o.clone()
                };
                let v = &v2;
                let min = v
                    .pointer("/spec/minReplicas")
                    .and_then(Value::as_i64)
                    .map_or_else(|| "<unset>".to_string(), |m| m.to_string());
                vec![
                    name(v),
                    json!(format!(
                        "{}/{}",
                        s(v, &["spec", "scaleTargetRef", "kind"]).unwrap_or(""),
                        s(v, &["spec", "scaleTargetRef", "name"]).unwrap_or("")
                    )),
                    json!(hpa_targets(v)),
                    json!(min),
                    json!(i(v, &["spec", "maxReplicas"])),
                    json!(i(v, &["status", "currentReplicas"])),
                    age(v),
                ]
            }),
        ),
        ("policy", "PodDisruptionBudget") => (
            vec![
                n(),
                col(
                    "Min Available",
                    "string",
                    0,
                    "The minimum number of pods that must be available.",
                ),
                col(
                    "Max Unavailable",
                    "string",
                    0,
                    "The maximum number of pods that may be unavailable.",
                ),
                col(
                    "Allowed Disruptions",
                    "integer",
                    0,
                    "Calculated number of pods that may be disrupted at this time.",
                ),
                a(),
            ],
            plain(|o| {
                vec![
                    name(o),
                    json!(int_or_string_text(o.pointer("/spec/minAvailable"))),
                    json!(int_or_string_text(o.pointer("/spec/maxUnavailable"))),
                    json!(i(o, &["status", "disruptionsAllowed"])),
                    age(o),
                ]
            }),
        ),
        ("networking.k8s.io", "Ingress") => (
            vec![
                n(),
                col(
                    "Class",
                    "string",
                    0,
                    "The name of the IngressClass resource that should be used for additional configuration",
                ),
                col(
                    "Hosts",
                    "string",
                    0,
                    "Hosts that incoming requests are matched against before the ingress rule",
                ),
                col(
                    "Address",
                    "string",
                    0,
                    "Address is a list containing ingress points for the load-balancer",
                ),
                col(
                    "Ports",
                    "string",
                    0,
                    "Ports of TLS configurations that open",
                ),
                a(),
            ],
            plain(|o| {
                let rules = arr(o, &["spec", "rules"]);
                let mut hosts = Vec::new();
                let mut more = false;
                for r in rules {
                    if hosts.len() == 3 {
                        more = true;
                    }
                    if let Some(h) = r
                        .get("host")
                        .and_then(Value::as_str)
                        .filter(|h| !h.is_empty())
                        && !more
                    {
                        hosts.push(h.to_string());
                    }
                }
                let hosts_text = if hosts.is_empty() {
                    "*".to_string()
                } else if more {
                    format!("{} + {} more...", hosts.join(","), rules.len() - 3)
                } else {
                    hosts.join(",")
                };
                let ports = if arr(o, &["spec", "tls"]).is_empty() {
                    "80"
                } else {
                    "80, 443"
                };
                vec![
                    name(o),
                    json!(s(o, &["spec", "ingressClassName"]).unwrap_or("<none>")),
                    json!(hosts_text),
                    json!(lb_ingress(o).join(",")),
                    json!(ports),
                    age(o),
                ]
            }),
        ),
        ("networking.k8s.io", "IngressClass") => (
            vec![
                n(),
                col(
                    "Controller",
                    "string",
                    0,
                    "Controller that is responsible for handling this class",
                ),
                col(
                    "Parameters",
                    "string",
                    0,
                    "A reference to a resource with additional parameters",
                ),
                a(),
            ],
            plain(|o| {
                let params = match o.pointer("/spec/parameters") {
                    None => "<none>".to_string(),
                    Some(p) => {
                        let mut t = p
                            .get("kind")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        if let Some(g) = p.get("apiGroup").and_then(Value::as_str) {
                            t.push('.');
                            t.push_str(g);
                        }
                        format!(
                            "{t}/{}",
                            p.get("name").and_then(Value::as_str).unwrap_or("")
                        )
                    }
                };
                vec![
                    name(o),
                    json!(s(o, &["spec", "controller"]).unwrap_or("")),
                    json!(params),
                    age(o),
                ]
            }),
        ),
        ("networking.k8s.io", "NetworkPolicy") => (
            vec![
                n(),
                col(
                    "Pod-Selector",
                    "string",
                    0,
                    "Selects the pods to which this NetworkPolicy object applies.",
                ),
                a(),
            ],
            plain(|o| {
                vec![
                    name(o),
                    json!(format_selector(o.pointer("/spec/podSelector"))),
                    age(o),
                ]
            }),
        ),
        ("discovery.k8s.io", "EndpointSlice") => (
            vec![
                n(),
                col(
                    "AddressType",
                    "string",
                    0,
                    "addressType specifies the type of address carried by this EndpointSlice.",
                ),
                col(
                    "Ports",
                    "string",
                    0,
                    "ports specifies the list of network ports exposed by each endpoint in this slice.",
                ),
                col(
                    "Endpoints",
                    "string",
                    0,
                    "endpoints is a list of unique endpoints in this slice.",
                ),
                a(),
            ],
            plain(|o| {
                let ports: Vec<String> = arr(o, &["ports"])
                    .iter()
                    .map(|p| {
                        match (
                            p.get("port").and_then(Value::as_i64),
                            p.get("name").and_then(Value::as_str),
                        ) {
                            (Some(n), _) => n.to_string(),
                            (None, Some(nm)) => nm.to_string(),
                            _ => "*".to_string(),
                        }
                    })
                    .collect();
                let pc = ports.len();
                let addrs: Vec<String> = arr(o, &["endpoints"])
                    .iter()
                    .flat_map(|e| {
                        arr(e, &["addresses"])
                            .iter()
                            .filter_map(|a| a.as_str().map(str::to_string))
                    })
                    .collect();
                let ac = addrs.len();
                vec![
                    name(o),
                    json!(s(o, &["addressType"]).unwrap_or("")),
                    json!(list_with_more(ports, pc)),
                    json!(list_with_more(addrs, ac)),
                    age(o),
                ]
            }),
        ),
        ("rbac.authorization.k8s.io", "RoleBinding")
        | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            let which = if info.kind == "RoleBinding" {
                "roleBinding"
            } else {
                "clusterRoleBinding"
            };
            (
                vec![
                    n(),
                    col(
                        "Role",
                        "string",
                        0,
                        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
                    ),
                    a(),
                    col("Users", "string", 1, &format!("Users in the {which}")),
                    col("Groups", "string", 1, &format!("Groups in the {which}")),
                    col(
                        "ServiceAccounts",
                        "string",
                        1,
                        &format!("ServiceAccounts in the {which}"),
                    ),
                ],
                plain(binding),
            )
        }
        ("storage.k8s.io", "StorageClass") => (
            vec![
                n(),
                col(
                    "Provisioner",
                    "string",
                    0,
                    "provisioner indicates the type of the provisioner.",
                ),
                col(
                    "ReclaimPolicy",
                    "string",
                    0,
                    "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.",
                ),
                col(
                    "VolumeBindingMode",
                    "string",
                    0,
                    "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
                ),
                col(
                    "AllowVolumeExpansion",
                    "string",
                    0,
                    "allowVolumeExpansion shows whether the storage class allow volume expand.",
                ),
                a(),
            ],
            plain(|o| {
                let default = [
                    "storageclass.kubernetes.io~1is-default-class",
                    "storageclass.beta.kubernetes.io~1is-default-class",
                ]
                .iter()
                .any(|k| {
                    o.pointer(&format!("/metadata/annotations/{k}"))
                        .and_then(Value::as_str)
                        == Some("true")
                });
                let mut n = s(o, &["metadata", "name"]).unwrap_or("").to_string();
                if default {
                    n.push_str(" (default)");
                }
                vec![
                    json!(n),
                    json!(s(o, &["provisioner"]).unwrap_or("")),
                    json!(s(o, &["reclaimPolicy"]).unwrap_or("Delete")),
                    json!(s(o, &["volumeBindingMode"]).unwrap_or("Immediate")),
                    json!(
                        o.get("allowVolumeExpansion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    age(o),
                ]
            }),
        ),
        ("storage.k8s.io", "CSIDriver") => (
            vec![
                n(),
                col(
                    "AttachRequired",
                    "boolean",
                    0,
                    "attachRequired indicates this CSI volume driver requires an attach operation.",
                ),
                col(
                    "PodInfoOnMount",
                    "boolean",
                    0,
                    "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations.",
                ),
                col(
                    "StorageCapacity",
                    "boolean",
                    0,
                    "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report.",
                ),
                col(
                    "TokenRequests",
                    "string",
                    0,
                    "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication.",
                ),
                col(
                    "RequiresRepublish",
                    "boolean",
                    0,
                    "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume.",
                ),
                col(
                    "Modes",
                    "string",
                    0,
                    "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports.",
                ),
                a(),
            ],
            plain(|o| {
                let b = |f: &str, d: bool| {
                    json!(
                        o.pointer(&format!("/spec/{f}"))
                            .and_then(Value::as_bool)
                            .unwrap_or(d)
                    )
                };
                let tokens = match o.pointer("/spec/tokenRequests").and_then(Value::as_array) {
                    None => "<unset>".to_string(),
                    Some(t) => t
                        .iter()
                        .filter_map(|x| x.get("audience").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(","),
                };
                let modes: Vec<&str> = arr(o, &["spec", "volumeLifecycleModes"])
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                vec![
                    name(o),
                    b("attachRequired", true),
                    b("podInfoOnMount", false),
                    b("storageCapacity", false),
                    json!(tokens),
                    b("requiresRepublish", false),
                    json!(if modes.is_empty() {
                        "<none>".to_string()
                    } else {
                        modes.join(",")
                    }),
                    age(o),
                ]
            }),
        ),
        ("storage.k8s.io", "VolumeAttachment") => (
            vec![
                n(),
                Column {
                    format: "name",
                    ..col(
                        "Attacher",
                        "string",
                        0,
                        "attacher indicates the name of the volume driver that MUST handle this request.",
                    )
                },
                col(
                    "PV",
                    "string",
                    0,
                    "persistentVolumeName represents the name of the persistent volume to attach.",
                ),
                col(
                    "Node",
                    "string",
                    0,
                    "nodeName represents the node that the volume should be attached to.",
                ),
                col(
                    "Attached",
                    "boolean",
                    0,
                    "attached indicates the volume is successfully attached.",
                ),
                a(),
            ],
            plain(|o| {
                vec![
                    name(o),
                    json!(s(o, &["spec", "attacher"]).unwrap_or("")),
                    json!(s(o, &["spec", "source", "persistentVolumeName"]).unwrap_or("")),
                    json!(s(o, &["spec", "nodeName"]).unwrap_or("")),
                    json!(
                        o.pointer("/status/attached")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    age(o),
                ]
            }),
        ),
        ("scheduling.k8s.io", "PriorityClass") => (
            vec![
                n(),
                col(
                    "Value",
                    "integer",
                    0,
                    "value represents the integer value of this priority class.",
                ),
                col(
                    "Global-Default",
                    "boolean",
                    0,
                    "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.",
                ),
                a(),
                col(
                    "PreemptionPolicy",
                    "string",
                    0,
                    "preemptionPolicy is the Policy for preempting pods with lower priority.",
                ),
            ],
            plain(|o| {
                vec![
                    name(o),
                    json!(i(o, &["value"])),
                    json!(
                        o.get("globalDefault")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    age(o),
                    json!(s(o, &["preemptionPolicy"]).unwrap_or("")),
                ]
            }),
        ),
        ("node.k8s.io", "RuntimeClass") => (
            vec![n(), col("Handler", "string", 0, ""), a()],
            plain(|o| vec![name(o), json!(s(o, &["handler"]).unwrap_or("")), age(o)]),
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => (
            vec![
                n(),
                col(
                    "Webhooks",
                    "integer",
                    0,
                    "Webhooks indicates the number of webhooks registered in this configuration",
                ),
                a(),
            ],
            plain(|o| vec![name(o), json!(arr(o, &["webhooks"]).len()), age(o)]),
        ),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => (
            vec![
                n(),
                col(
                    "Validations",
                    "integer",
                    0,
                    "Validations indicates the number of validation rules defined in this configuration",
                ),
                col(
                    "ParamKind",
                    "string",
                    0,
                    "ParamKind specifies the kind of resources used to parameterize this policy",
                ),
                a(),
            ],
            plain(|o| {
                let pk = match o.pointer("/spec/paramKind") {
                    None => "<unset>".to_string(),
                    Some(p) => format!(
                        "{}/{}",
                        p.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                        p.get("kind").and_then(Value::as_str).unwrap_or("")
                    ),
                };
                vec![
                    name(o),
                    json!(arr(o, &["spec", "validations"]).len()),
                    json!(pk),
                    age(o),
                ]
            }),
        ),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => (
            vec![
                n(),
                col(
                    "PolicyName",
                    "string",
                    0,
                    "PolicyName indicates the policy definition which the policy binding binded to",
                ),
                col(
                    "ParamRef",
                    "string",
                    0,
                    "ParamRef indicates the param resource which sets the configration param",
                ),
                a(),
            ],
            plain(|o| {
                let pr = match o.pointer("/spec/paramRef") {
                    None => "<unset>".to_string(),
                    Some(p) => match p
                        .get("name")
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty())
                    {
                        Some(n) => {
                            let ns = p
                                .get("namespace")
                                .and_then(Value::as_str)
                                .filter(|n| !n.is_empty())
                                .unwrap_or("*");
                            format!("{ns}/{n}")
                        }
                        None => match p.get("selector") {
                            Some(sel) => {
                                format!("&LabelSelector{{{}}}", selector_string(Some(sel)))
                            }
                            None => "<unset>".to_string(),
                        },
                    },
                };
                vec![
                    name(o),
                    json!(s(o, &["spec", "policyName"]).unwrap_or("")),
                    json!(pr),
                    age(o),
                ]
            }),
        ),
        ("certificates.k8s.io", "CertificateSigningRequest") => (
            vec![
                n(),
                a(),
                col(
                    "SignerName",
                    "string",
                    0,
                    "signerName indicates the requested signer, and is a qualified name.",
                ),
                col(
                    "Requestor",
                    "string",
                    0,
                    "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block.",
                ),
                col(
                    "RequestedDuration",
                    "string",
                    0,
                    "expirationSeconds is the requested duration of validity of the issued certificate.",
                ),
                col(
                    "Condition",
                    "string",
                    0,
                    "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\".",
                ),
            ],
            plain(|o| {
                let types: Vec<&str> = arr(o, &["status", "conditions"])
                    .iter()
                    .filter_map(|c| c.get("type").and_then(Value::as_str))
                    .collect();
                let mut cond = if types.contains(&"Denied") {
                    "Denied".to_string()
                } else if types.contains(&"Approved") {
                    "Approved".to_string()
                } else {
                    "Pending".to_string()
                };
                if types.contains(&"Failed") {
                    cond.push_str(",Failed");
                }
                if o.pointer("/status/certificate")
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.is_empty())
                {
                    cond.push_str(",Issued");
                }
                let duration = o
                    .pointer("/spec/expirationSeconds")
                    .and_then(Value::as_i64)
                    .map_or_else(|| "<none>".to_string(), human_duration);
                vec![
                    name(o),
                    age(o),
                    json!(s(o, &["spec", "signerName"]).unwrap_or("<none>")),
                    json!(s(o, &["spec", "username"]).unwrap_or("")),
                    json!(duration),
                    json!(cond),
                ]
            }),
        ),
        ("coordination.k8s.io", "Lease") => (
            vec![
                n(),
                col(
                    "Holder",
                    "string",
                    0,
                    "holderIdentity contains the identity of the holder of a current lease.",
                ),
                a(),
            ],
            plain(|o| {
                vec![
                    name(o),
                    json!(s(o, &["spec", "holderIdentity"]).unwrap_or("")),
                    age(o),
                ]
            }),
        ),
        ("korral.dev", "GitSource") => (
            vec![
                n(),
                col("Source", "string", 0, "The repository URL or folder."),
                col("Revision", "string", 0, "The last applied revision."),
                col("Ready", "string", 0, "Whether the last sync succeeded."),
                col("Status", "string", 0, "The Ready condition's message."),
                a(),
            ],
            plain(|o| {
                let source = s(o, &["spec", "url"])
                    .or_else(|| s(o, &["spec", "path"]))
                    .unwrap_or("");
                let revision: String = s(o, &["status", "lastAppliedRevision"])
                    .unwrap_or("")
                    .chars()
                    .take(12)
                    .collect();
                let ready = arr(o, &["status", "conditions"])
                    .iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                    .cloned();
                vec![
                    name(o),
                    json!(source),
                    json!(revision),
                    json!(
                        ready
                            .as_ref()
                            .and_then(|c| c.get("status"))
                            .and_then(Value::as_str)
                            .unwrap_or("Unknown")
                    ),
                    json!(
                        ready
                            .as_ref()
                            .and_then(|c| c.get("message"))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    ),
                    age(o),
                ]
            }),
        ),
        ("korral.dev", "DriftReport") => (
            vec![
                n(),
                col("Source", "string", 0, "The source compared."),
                col("Drifted", "string", 0, "Whether anything differs."),
                col("Missing", "integer", 0, "Objects missing from the cluster."),
                col(
                    "Extra",
                    "integer",
                    0,
                    "Objects the source no longer declares.",
                ),
                col("Modified", "integer", 0, "Objects whose fields differ."),
                a(),
            ],
            plain(|o| {
                vec![
                    name(o),
                    json!(s(o, &["spec", "source"]).unwrap_or("")),
                    json!(
                        o.pointer("/status/drifted")
                            .and_then(Value::as_bool)
                            .map_or("Unknown", |d| if d { "True" } else { "False" })
                    ),
                    json!(arr(o, &["status", "missing"]).len()),
                    json!(arr(o, &["status", "extra"]).len()),
                    json!(arr(o, &["status", "modified"]).len()),
                    age(o),
                ]
            }),
        ),
        _ => return None,
    })
}
