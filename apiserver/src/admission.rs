//! Admission on every write, as Kubernetes' registry strategies do it:
//! server-set metadata on create, status/spec separation between the main
//! resource and the `status` subresource, immutable fields, generation bumps,
//! then defaulting and strict validation (the same verdict as `korral validate`).

use serde_json::{Map, Value, json};

use schemas::{FieldError, FieldPath, KindInfo, Time};

use crate::errors::{ApiError, ApiResult};
use crate::objects::{self, meta_mut};

/// Kinds whose `status` is written only through the `status` subresource.
pub fn has_status_subresource(info: &KindInfo) -> bool {
    info.subresources.contains(&"status")
}

/// Kinds whose `metadata.generation` tracks spec changes.
fn tracks_generation(info: &KindInfo) -> bool {
    matches!(
        (info.group, info.kind),
        ("apps", _) | ("", "Pod") | ("korral.dev", _)
    )
}

/// The part of an object that counts as its desired state for generation bumps.
fn desired_state(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Value::Object(m) = &mut v {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// Server-set fields of a new object.
pub fn prepare_create(info: &KindInfo, obj: &mut Value, namespace: Option<&str>) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if let Value::Object(root) = obj {
        root.insert("apiVersion".into(), Value::String(info.api_version.into()));
        root.insert("kind".into(), Value::String(info.kind.into()));
    }
    let meta = meta_mut(obj);
    if info.namespaced {
        match (
            meta.get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty()),
            namespace,
        ) {
            (Some(body), Some(url)) if body != url => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body}) does not match the namespace sent on the request ({url})"
                )));
            }
            (_, Some(url)) => {
                meta.insert("namespace".into(), Value::String(url.into()));
            }
            (_, None) => {
                return Err(ApiError::bad_request(
                    "a namespaced object must be created in a namespace",
                ));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name
        && let Some(prefix) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|g| !g.is_empty())
    {
        let name = format!("{prefix}{}", objects::random_suffix(5));
        meta.insert("name".into(), Value::String(name));
    }
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert(
        "creationTimestamp".into(),
        Value::String(Time::now().to_string()),
    );
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    if tracks_generation(info) {
        meta.insert("generation".into(), Value::from(1));
    } else {
        meta.remove("generation");
    }
    reset_status_on_create(info, obj);
    Ok(())
}

fn reset_status_on_create(info: &KindInfo, obj: &mut Value) {
    let Value::Object(root) = obj else { return };
    match (info.group, info.kind) {
        ("", "Pod") => {
            let qos = qos_class(root.get("spec").unwrap_or(&Value::Null));
            root.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
            add_default_tolerations(root);
        }
        ("", "Namespace") => {
            root.insert("status".into(), json!({"phase": "Active"}));
        }
        ("", "Service") => {
            root.insert("status".into(), json!({"loadBalancer": {}}));
        }
        ("", "Node") => {}
        _ if has_status_subresource(info) => {
            root.remove("status");
        }
        _ => {}
    }
}

/// Kubernetes' DefaultTolerationSeconds admission: pods tolerate `not-ready`
/// and `unreachable` NoExecute taints for 300 s unless they say otherwise.
fn add_default_tolerations(root: &mut Map<String, Value>) {
    let Some(Value::Object(spec)) = root.get_mut("spec") else {
        return;
    };
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(list) = tolerations else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = list.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let exists_all =
                k.is_empty() && t.get("operator").and_then(Value::as_str) == Some("Exists");
            exists_all || (k == key && (effect.is_empty() || effect == "NoExecute"))
        });
        if !tolerated {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let res = c.get("resources");
        let requests = res
            .and_then(|r| r.get("requests"))
            .and_then(Value::as_object);
        let limits = res.and_then(|r| r.get("limits")).and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(r));
            let request = requests.and_then(|q| q.get(r)).or(limit);
            match (limit, request) {
                (Some(l), Some(q)) if quantity_eq(l, q) => {}
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

fn quantity_eq(a: &Value, b: &Value) -> bool {
    let parse = |v: &Value| -> Option<schemas::Quantity> { serde_json::from_value(v.clone()).ok() };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn immutable(path: &str, value: &Value) -> FieldError {
    FieldError::invalid(
        FieldPath::fields(path),
        value.to_string(),
        "field is immutable",
    )
}

/// Prepares an update: keeps what this endpoint may not change, checks
/// immutable fields, bumps the generation when the desired state changed.
pub fn prepare_update(
    info: &KindInfo,
    old: &Value,
    new: &mut Value,
    subresource: Option<&str>,
) -> ApiResult<()> {
    if !new.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if let Value::Object(root) = new {
        root.insert("apiVersion".into(), Value::String(info.api_version.into()));
        root.insert("kind".into(), Value::String(info.kind.into()));
    }
    let name = objects::name(old).to_string();
    let new_name = objects::name(new).to_string();
    if !new_name.is_empty() && new_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    if let (Some(body), Some(url)) = (objects::namespace(new), objects::namespace(old))
        && body != url
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({body}) does not match the namespace sent on the request ({url})"
        )));
    }
    let new_uid = objects::uid(new);
    if !new_uid.is_empty() && new_uid != objects::uid(old) {
        return Err(ApiError::conflict_because(
            info,
            &name,
            &format!(
                "Precondition failed: UID in precondition: {}, UID in object meta: {new_uid}",
                objects::uid(old)
            ),
        ));
    }
    // server-owned metadata comes from the stored object
    {
        let old_meta = old
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let meta = meta_mut(new);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(v) => {
                    meta.insert(field.into(), v.clone());
                }
                None => {
                    meta.remove(field);
                }
            }
        }
        meta.remove("selfLink");
    }
    match subresource {
        Some("status") => {
            // only status changes through the status subresource
            let status = new.get("status").cloned();
            let managed = new
                .get("metadata")
                .and_then(|m| m.get("managedFields"))
                .cloned();
            *new = old.clone();
            if let Value::Object(root) = new {
                match status {
                    Some(s) => root.insert("status".into(), s),
                    None => root.remove("status"),
                };
            }
            if let Some(mf) = managed {
                meta_mut(new).insert("managedFields".into(), mf);
            }
        }
        // the binding handler sets spec.nodeName and the PodScheduled condition itself
        Some("binding") => {}
        _ if has_status_subresource(info) => {
            if let Value::Object(root) = new {
                match old.get("status") {
                    Some(s) => root.insert("status".into(), s.clone()),
                    None => root.remove("status"),
                };
            }
        }
        _ => {}
    }
    if info.group.is_empty() && info.kind == "Service" {
        keep_allocations(old, new);
    }
    let mut errors = Vec::new();
    if subresource != Some("binding") {
        check_immutable(info, old, new, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(info, &name, &errors));
    }
    if tracks_generation(info) && desired_state(old) != desired_state(new) {
        let g = objects::generation(old).max(1) + 1;
        meta_mut(new).insert("generation".into(), Value::from(g));
    }
    Ok(())
}

/// A Service update that leaves out its cluster IP or node ports keeps the
/// allocated ones (as Kubernetes does), so re-applying a manifest changes nothing.
fn keep_allocations(old: &Value, new: &mut Value) {
    let Some(new_spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(old_spec) = old.get("spec") else {
        return;
    };
    let new_type = new_spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if new_type != "ExternalName"
        && new_spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if let Some(v) = old_spec.get(f) {
                new_spec.insert(f.into(), v.clone());
            }
        }
    }
    if matches!(new_type.as_str(), "NodePort" | "LoadBalancer") {
        let old_ports = old_spec
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Array(ports)) = new_spec.get_mut("ports") {
            for p in ports.iter_mut() {
                let missing = p
                    .get("nodePort")
                    .and_then(Value::as_i64)
                    .is_none_or(|n| n == 0);
                let port = p.get("port").cloned();
                let proto = p.get("protocol").cloned().unwrap_or(json!("TCP"));
                if missing
                    && let Some(np) = old_ports
                        .iter()
                        .find(|o| {
                            o.get("port") == port.as_ref()
                                && o.get("protocol").cloned().unwrap_or(json!("TCP")) == proto
                        })
                        .and_then(|o| o.get("nodePort"))
                    && let Some(m) = p.as_object_mut()
                {
                    m.insert("nodePort".into(), np.clone());
                }
            }
        }
    }
}

fn check_immutable(info: &KindInfo, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    let at = |v: &Value, path: &str| FieldPath::fields(path).lookup(v).cloned();
    match (info.group, info.kind) {
        ("apps", "Deployment" | "ReplicaSet")
            if at(old, "spec.selector") != at(new, "spec.selector") =>
        {
            errors.push(immutable(
                "spec.selector",
                &at(new, "spec.selector").unwrap_or(Value::Null),
            ));
        }
        ("", "Pod") => check_pod_update(old, new, errors),
        ("", "Service") => {
            let old_ip = at(old, "spec.clusterIP");
            let new_ip = at(new, "spec.clusterIP");
            let to_external =
                at(new, "spec.type").as_ref().and_then(Value::as_str) == Some("ExternalName");
            if old_ip
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
                && new_ip
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
                && old_ip != new_ip
                && !to_external
            {
                errors.push(immutable("spec.clusterIP", &new_ip.unwrap_or(Value::Null)));
            }
        }
        ("", "ConfigMap" | "Secret") => {
            if old.get("immutable") == Some(&Value::Bool(true)) {
                for f in ["data", "binaryData", "stringData", "immutable"] {
                    if old.get(f) != new.get(f) && !(f == "stringData" && new.get(f).is_none()) {
                        errors.push(FieldError::forbidden(
                            FieldPath::fields(f),
                            "field is immutable when `immutable` is set",
                        ));
                    }
                }
            }
            if info.kind == "Secret" && old.get("type") != new.get("type") {
                errors.push(immutable("type", new.get("type").unwrap_or(&Value::Null)));
            }
        }
        ("", "Node") => {
            let old_cidr = at(old, "spec.podCIDR");
            if old_cidr
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
                && old_cidr != at(new, "spec.podCIDR")
            {
                errors.push(FieldError::forbidden(
                    FieldPath::fields("spec.podCIDR"),
                    "podCIDR may not be changed once set",
                ));
            }
        }
        _ => {}
    }
}

/// Pod specs are immutable except images, activeDeadlineSeconds, added
/// tolerations, removed scheduling gates and a negative grace period.
fn check_pod_update(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    let (Some(old_spec), Some(new_spec)) = (old.get("spec"), new.get("spec")) else {
        return;
    };
    let mut relaxed = new_spec.clone();
    // take the allowed changes back out, then compare with the old spec
    for list in ["containers", "initContainers"] {
        if let (Some(Value::Array(o)), Some(Value::Array(n))) =
            (old_spec.get(list), relaxed.get_mut(list))
            && o.len() == n.len()
        {
            for (oc, nc) in o.iter().zip(n.iter_mut()) {
                if let (Some(img), Value::Object(m)) = (oc.get("image"), nc) {
                    m.insert("image".into(), img.clone());
                }
            }
        }
    }
    if let Value::Object(m) = &mut relaxed {
        for field in [
            "activeDeadlineSeconds",
            "terminationGracePeriodSeconds",
            "schedulingGates",
        ] {
            match old_spec.get(field) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
        let old_tol = old_spec
            .get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let new_tol = m
            .get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if old_tol.iter().all(|t| new_tol.contains(t)) {
            match old_spec.get("tolerations") {
                Some(v) => m.insert("tolerations".into(), v.clone()),
                None => m.remove("tolerations"),
            };
        }
    }
    if &relaxed != old_spec {
        errors.push(FieldError::forbidden(
            FieldPath::fields("spec"),
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

/// Applies the kind's defaults and validates strictly; returns the object to store.
pub fn default_and_validate(info: &KindInfo, mut obj: Value) -> ApiResult<Value> {
    schemas::check::strip_nulls(&mut obj);
    let name = objects::name(&obj).to_string();
    // validate what the client sent (unknown fields, types), then the defaulted object
    let errors = schemas::validate_object(info, &obj);
    if !errors.is_empty() {
        return Err(ApiError::invalid(info, &name, &errors));
    }
    let defaulted = info
        .apply_defaults(obj)
        .map_err(|e| ApiError::invalid(info, &name, &[e]))?;
    let errors = schemas::validate_object(info, &defaulted);
    if !errors.is_empty() {
        return Err(ApiError::invalid(info, &name, &errors));
    }
    Ok(defaulted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(api: &str, k: &str) -> &'static KindInfo {
        schemas::lookup(api, k).expect("kind")
    }

    #[test]
    fn create_sets_server_fields_and_resets_status() {
        let pod = kind("v1", "Pod");
        let mut obj = json!({"metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}, "status": {"phase": "Running"}});
        prepare_create(pod, &mut obj, Some("default")).expect("prepare");
        assert_eq!(obj["kind"], "Pod");
        assert!(
            obj["metadata"]["name"]
                .as_str()
                .expect("name")
                .starts_with("web-")
        );
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_eq!(
            obj["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
        assert_eq!(obj["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
        let mut wrong = json!({"metadata": {"name": "a", "namespace": "other"}});
        assert_eq!(
            prepare_create(pod, &mut wrong, Some("default"))
                .expect_err("mismatch")
                .code,
            400
        );
    }

    #[test]
    fn updates_keep_status_and_bump_generation_on_spec_change() {
        let d = kind("apps/v1", "Deployment");
        let old = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}}, "status": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "web", "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}}}, "status": {"replicas": 99}});
        prepare_update(d, &old, &mut new, None).expect("update");
        assert_eq!(new["status"]["replicas"], 1);
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(new["metadata"]["uid"], "u1");
        let mut status_only = json!({"metadata": {"name": "web"}, "spec": {"replicas": 7}, "status": {"replicas": 5}});
        prepare_update(d, &old, &mut status_only, Some("status")).expect("status update");
        assert_eq!(status_only["spec"]["replicas"], 1);
        assert_eq!(status_only["status"]["replicas"], 5);
        assert_eq!(status_only["metadata"]["generation"], 1);
        let mut selector =
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"a": "c"}}}});
        let e = prepare_update(d, &old, &mut selector, None).expect_err("immutable");
        assert_eq!(e.code, 422);
        assert!(e.message.contains("spec.selector"), "{}", e.message);
    }

    #[test]
    fn pod_specs_allow_only_image_changes() {
        let pod = kind("v1", "Pod");
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "v1"}]}});
        let mut image = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "v2"}]}});
        prepare_update(pod, &old, &mut image, None).expect("image change is allowed");
        let mut command = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "v1", "command": ["x"]}]}});
        let e = prepare_update(pod, &old, &mut command, None).expect_err("spec change");
        assert!(
            e.message.contains("pod updates may not change fields"),
            "{}",
            e.message
        );
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "c"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m"}}}]})
            ),
            "Guaranteed"
        );
    }

    #[test]
    fn validation_is_strict_and_defaults_are_applied() {
        let cm = kind("v1", "ConfigMap");
        let e = default_and_validate(
            cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "dta": {}}),
        )
        .expect_err("unknown field");
        assert_eq!(e.code, 422);
        assert!(e.message.contains("unknown field \"dta\""), "{}", e.message);
        let svc = kind("v1", "Service");
        let v = default_and_validate(svc, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}))
            .expect("valid");
        assert_eq!(v["spec"]["ports"][0]["targetPort"], 80);
    }
}
