//! Kubernetes' registry strategies, kind by kind: server-set metadata on
//! create, status/spec separation between the main resource and the
//! `status` subresource, generation bumps, and what each kind's strategy
//! adds (Job selectors, DaemonSet template generations, pod QoS and
//! tolerations, Service allocations kept across updates, CRD stored versions).

use serde_json::{Map, Value, json};

use schemas::KindInfo;

use crate::admission::{Warnings, pods};
use crate::errors::{ApiError, ApiResult};
use crate::objects::{self, meta_mut};

/// Namespaces kube-apiserver refuses to delete.
pub const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Kinds whose `status` is written only through the `status` subresource.
pub fn has_status_subresource(info: &KindInfo) -> bool {
    info.has_status_subresource()
}

/// Kinds whose strategies set `metadata.generation` (1, then +1 per change
/// of anything but metadata and status).
pub fn tracks_generation(info: &KindInfo) -> bool {
    if !info.is_builtin() {
        return true;
    }
    matches!(
        (info.group.as_str(), info.kind.as_str()),
        (
            "apps",
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        ) | ("", "ReplicationController" | "PodTemplate")
            | ("batch", "Job" | "CronJob")
            | ("policy", "PodDisruptionBudget")
            | (
                "networking.k8s.io",
                "Ingress" | "IngressClass" | "NetworkPolicy"
            )
            | ("discovery.k8s.io", "EndpointSlice")
            | ("storage.k8s.io", "CSIDriver")
            | ("scheduling.k8s.io", "PriorityClass")
            | (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration"
                    | "MutatingWebhookConfiguration"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
            )
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("korral.dev", _)
    )
}

/// Whether a delete answers with the deleted object (the registries with
/// `ReturnDeletedObject`) rather than a `Status`.
pub fn returns_deleted_object(info: &KindInfo) -> bool {
    matches!(
        (info.group.as_str(), info.kind.as_str()),
        (
            "",
            "Pod"
                | "Service"
                | "ServiceAccount"
                | "Namespace"
                | "PersistentVolume"
                | "PersistentVolumeClaim"
                | "ResourceQuota"
                | "PodTemplate"
        ) | (
            "storage.k8s.io",
            "StorageClass" | "VolumeAttachment" | "CSIDriver" | "CSINode"
        )
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

/// Sets `apiVersion` and `kind` to the kind's (the URL decides, not the body).
pub fn set_type_meta(info: &KindInfo, obj: &mut Value) -> ApiResult<()> {
    let Value::Object(root) = obj else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    root.insert("apiVersion".into(), Value::String(info.api_version.clone()));
    root.insert("kind".into(), Value::String(info.kind.clone()));
    Ok(())
}

/// Server-set fields of a new object, before defaulting.
pub fn prepare_create(info: &KindInfo, obj: &mut Value, namespace: Option<&str>) -> ApiResult<()> {
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
    if !has_name {
        if let Some(prefix) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|g| !g.is_empty())
        {
            // names.SimpleNameGenerator: the prefix is cut so that the name fits 63 characters
            let prefix: String = prefix.chars().take(63 - 5).collect();
            let name = format!("{prefix}{}", objects::random_suffix(5));
            meta.insert("name".into(), Value::String(name));
        } else if info.is("", "LimitRange") {
            meta.insert(
                "name".into(),
                Value::String(uuid::Uuid::new_v4().to_string()),
            );
        }
    }
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert(
        "creationTimestamp".into(),
        Value::String(schemas::time::now_text()),
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
    match (info.group.as_str(), info.kind.as_str()) {
        ("batch", "Job") => generate_job_selector(obj),
        ("", "ServiceAccount") => clean_secret_references(obj),
        ("apps", "DaemonSet") => {
            let meta = meta_mut(obj);
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Value::Object(a) = annotations {
                a.insert(
                    "deprecated.daemonset.template.generation".into(),
                    Value::String("1".into()),
                );
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => record_stored_version(obj),
        _ => {}
    }
    Ok(())
}

fn reset_status_on_create(info: &KindInfo, obj: &mut Value) {
    let Value::Object(root) = obj else { return };
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Node") => {}
        ("", "Namespace") => {
            root.insert("status".into(), json!({"phase": "Active"}));
        }
        ("", "Service") => {
            root.insert("status".into(), json!({"loadBalancer": {}}));
        }
        ("", "PersistentVolume") => {
            root.insert(
                "status".into(),
                json!({"phase": "Pending", "lastPhaseTransitionTime": schemas::time::now_text()}),
            );
        }
        ("policy", "PodDisruptionBudget") => {
            root.insert(
                "status".into(),
                json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
            );
        }
        _ if info.has_status_subresource() => {
            root.remove("status");
        }
        _ => {}
    }
}

/// batch/v1 Job: the controller-uid and job-name labels on the template and
/// a selector for them, unless the Job selects its pods itself.
fn generate_job_selector(obj: &mut Value) {
    let name = objects::name(obj).to_string();
    let uid = objects::uid(obj).to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector") == Some(&Value::Bool(true)) {
        return;
    }
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if let Value::Object(t) = template {
        let meta = t.entry("metadata").or_insert_with(|| json!({}));
        if let Value::Object(m) = meta {
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if let Value::Object(l) = labels {
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", &uid),
                    ("batch.kubernetes.io/job-name", &name),
                    ("controller-uid", &uid),
                    ("job-name", &name),
                ] {
                    l.entry(k).or_insert_with(|| Value::String(v.clone()));
                }
            }
        }
    }
    let selector = spec.entry("selector").or_insert_with(|| json!({}));
    if let Value::Object(s) = selector {
        let ml = s.entry("matchLabels").or_insert_with(|| json!({}));
        if let Value::Object(ml) = ml {
            ml.entry("batch.kubernetes.io/controller-uid")
                .or_insert_with(|| Value::String(uid));
        }
    }
}

/// ServiceAccounts keep only the names of the secrets they list.
fn clean_secret_references(obj: &mut Value) {
    if let Some(Value::Array(secrets)) = obj.get_mut("secrets") {
        for s in secrets.iter_mut() {
            let name = s.get("name").cloned();
            *s = match name {
                Some(n) => json!({"name": n}),
                None => json!({}),
            };
        }
    }
}

/// A CustomResourceDefinition records its storage version in `status.storedVersions`.
fn record_stored_version(obj: &mut Value) {
    let storage = obj
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.get("storage") == Some(&Value::Bool(true)))
        })
        .and_then(|v| v.get("name"))
        .cloned();
    let Some(storage) = storage else { return };
    let Value::Object(root) = obj else { return };
    let status = root.entry("status").or_insert_with(|| json!({}));
    if let Value::Object(st) = status {
        let stored = st.entry("storedVersions").or_insert_with(|| json!([]));
        if let Value::Array(list) = stored
            && !list.contains(&storage)
        {
            list.push(storage);
        }
        st.entry("acceptedNames")
            .or_insert_with(|| json!({"kind": "", "plural": ""}));
        st.entry("conditions").or_insert_with(|| json!([]));
    }
}

/// What a new object gets once defaulted: a pod's QoS class, tolerations
/// (priority is resolved from the store, `priority.rs`); built-in kinds' empty `spec`/`status`, as Go encodes them.
pub fn after_defaults_create(info: &KindInfo, obj: &mut Value) {
    let Value::Object(root) = obj else { return };
    if info.is("", "Pod") {
        let qos = pods::qos_class(root.get("spec").unwrap_or(&Value::Null));
        root.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
        pods::add_default_tolerations(root);
    }
    label_namespace(info, root);
    empty_spec_and_status(info, root);
}

/// Every Namespace carries `kubernetes.io/metadata.name: <name>`, set by
/// kube-apiserver's defaulting on every write (webhooks' and policies'
/// namespace selectors rely on it).
fn label_namespace(info: &KindInfo, root: &mut Map<String, Value>) {
    if !info.is("", "Namespace") {
        return;
    }
    let Some(Value::Object(meta)) = root.get_mut("metadata") else {
        return;
    };
    let Some(name) = meta.get("name").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if let Value::Object(labels) = labels {
        labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
    }
}

/// Built-in kinds' `spec` and `status` are Go structs, always written
/// (`"status":{}`, with its non-`omitempty` scalars), never left out.
fn empty_spec_and_status(info: &KindInfo, root: &mut Map<String, Value>) {
    if !info.is_builtin() {
        return;
    }
    let schema = info.compiled().schema();
    for field in ["spec", "status"] {
        if let Some(sub) = schemas::schema::property(schema, schema, field)
            && (field != "spec" || schema_requires_spec_struct(info))
        {
            let value = root.entry(field).or_insert_with(|| json!({}));
            if field == "status" {
                schemas::schema::fill_go_zero_values(schema, sub, value);
            }
        }
    }
}

/// Kinds whose `spec` is a pointer in Go (left out when unset).
fn schema_requires_spec_struct(info: &KindInfo) -> bool {
    !matches!(
        (info.group.as_str(), info.kind.as_str()),
        ("autoscaling", "HorizontalPodAutoscaler") | ("networking.k8s.io", "NetworkPolicy")
    )
}

/// Prepares an update before defaulting: keeps what this endpoint may not
/// change and the server-owned metadata.
pub fn prepare_update(
    info: &KindInfo,
    old: &Value,
    new: &mut Value,
    subresource: Option<&str>,
) -> ApiResult<()> {
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
            let mut keep_meta = None;
            if info.is_builtin() {
                // built-in status strategies let labels and annotations through
                keep_meta = new.get("metadata").cloned();
            }
            *new = old.clone();
            if let Value::Object(root) = new {
                match status {
                    Some(s) => root.insert("status".into(), s),
                    None => root.remove("status"),
                };
            }
            if let Some(Value::Object(m)) = keep_meta {
                let meta = meta_mut(new);
                for field in ["labels", "annotations"] {
                    match m.get(field) {
                        Some(v) => meta.insert(field.into(), v.clone()),
                        None => meta.remove(field),
                    };
                }
            }
            if let Some(mf) = managed {
                meta_mut(new).insert("managedFields".into(), mf);
            }
        }
        Some("approval") => {
            if let (Value::Object(root), Some(spec)) = (&mut *new, old.get("spec")) {
                root.insert("spec".into(), spec.clone());
            }
        }
        _ if info.has_status_subresource() => {
            if let Value::Object(root) = new {
                match old.get("status") {
                    Some(s) => root.insert("status".into(), s.clone()),
                    None => root.remove("status"),
                };
            }
        }
        _ => {}
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Service") => keep_allocations(old, new),
        ("", "ServiceAccount") => clean_secret_references(new),
        ("apps", "DaemonSet") => keep_template_generation(old, new),
        ("apiextensions.k8s.io", "CustomResourceDefinition") if subresource.is_none() => {
            record_stored_version(new)
        }
        _ => {}
    }
    Ok(())
}

/// The DaemonSet's template generation annotation is the server's.
fn keep_template_generation(old: &Value, new: &mut Value) {
    const KEY: &str = "deprecated.daemonset.template.generation";
    let old_gen = old
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(KEY))
        .cloned()
        .unwrap_or_else(|| Value::String("1".into()));
    let meta = meta_mut(new);
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if let Value::Object(a) = annotations {
        a.insert(KEY.into(), old_gen);
    }
}

/// After defaulting an update: generation and template-generation bumps.
pub fn after_defaults_update(
    info: &KindInfo,
    old: &Value,
    new: &mut Value,
    subresource: Option<&str>,
) {
    if let Value::Object(root) = new {
        label_namespace(info, root);
        empty_spec_and_status(info, root);
    }
    if subresource == Some("status") {
        return;
    }
    if info.is("", "Pod")
        && let Value::Object(root) = new
    {
        // DefaultTolerationSeconds and Priority admit updates too: a pod
        // PUT back without what they added keeps it
        pods::add_default_tolerations(root);
        let old_spec = old.get("spec");
        if let Some(Value::Object(spec)) = root.get_mut("spec") {
            for field in ["priority", "preemptionPolicy"] {
                if let Some(v) = old_spec.and_then(|s| s.get(field))
                    && !spec.contains_key(field)
                {
                    spec.insert(field.into(), v.clone());
                }
            }
        }
    }
    if tracks_generation(info) && desired_state(old) != desired_state(new) {
        let g = objects::generation(old).max(1) + 1;
        meta_mut(new).insert("generation".into(), Value::from(g));
    }
    if info.is("apps", "DaemonSet")
        && old.get("spec").and_then(|s| s.get("template"))
            != new.get("spec").and_then(|s| s.get("template"))
    {
        const KEY: &str = "deprecated.daemonset.template.generation";
        let current = new
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(KEY))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(1);
        let meta = meta_mut(new);
        if let Some(Value::Object(a)) = meta.get_mut("annotations") {
            a.insert(KEY.into(), Value::String((current + 1).to_string()));
        }
    }
}

/// Warnings kube-apiserver adds to some creates.
pub fn warn_on_create(info: &KindInfo, obj: &Value, warnings: &Warnings) {
    if let Some(w) = &info.deprecation_warning {
        warnings.add(w.clone());
    }
    if info.is("", "Endpoints") {
        warnings.add("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice");
    }
    let name = objects::name(obj);
    if matches!(
        (info.group.as_str(), info.kind.as_str()),
        ("batch", "Job" | "CronJob") | ("", "ReplicationController")
    ) && schemas::validation::names::dns1123_label(name).is_some()
    {
        warnings.add(format!(
            "metadata.name: this is used in Pod names and hostnames, which can result in surprising behavior; a DNS label is recommended: [{}]",
            schemas::validation::names::dns1123_label(name).unwrap_or_default()
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{Directives, admit_create, admit_update};

    fn kind(api: &str, k: &str) -> &'static KindInfo {
        schemas::lookup(api, k).expect("kind")
    }

    #[test]
    fn create_sets_server_fields_and_resets_status() {
        let pod = kind("v1", "Pod");
        let obj = json!({"metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}, "status": {"phase": "Running"}});
        let obj = admit_create(pod, obj, Some("default"), &Directives::default()).expect("admit");
        assert_eq!(obj["kind"], "Pod");
        assert!(
            obj["metadata"]["name"]
                .as_str()
                .expect("name")
                .starts_with("web-")
        );
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert_eq!(
            obj["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
        assert_eq!(obj["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
        let wrong = json!({"metadata": {"name": "a", "namespace": "other"}});
        assert_eq!(
            admit_create(pod, wrong, Some("default"), &Directives::default())
                .expect_err("mismatch")
                .code,
            400
        );
    }

    #[test]
    fn updates_keep_status_and_bump_generation_on_spec_change() {
        let d = kind("apps/v1", "Deployment");
        let pod = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let old = admit_create(
            d,
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "template": pod}}),
            Some("default"),
            &Directives::default(),
        )
        .expect("create");
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["status"] = json!({"replicas": 99});
        let new = admit_update(d, &old, new, None, &Directives::default()).expect("update");
        assert!(new["status"].get("replicas").is_none());
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(new["metadata"]["uid"], old["metadata"]["uid"]);
        let mut status_only = old.clone();
        status_only["spec"]["replicas"] = json!(7);
        status_only["status"] = json!({"replicas": 5});
        let s = admit_update(d, &old, status_only, Some("status"), &Directives::default())
            .expect("status");
        assert_eq!(s["spec"]["replicas"], 1);
        assert_eq!(s["status"]["replicas"], 5);
        assert_eq!(s["metadata"]["generation"], 1);
        let mut selector = old.clone();
        selector["spec"]["selector"] = json!({"matchLabels": {"a": "c"}});
        selector["spec"]["template"]["metadata"]["labels"] = json!({"a": "c"});
        let e =
            admit_update(d, &old, selector, None, &Directives::default()).expect_err("immutable");
        assert_eq!(e.code, 422);
        assert!(e.message.contains("spec.selector"), "{}", e.message);
    }

    #[test]
    fn pods_reapplied_without_defaults_are_accepted() {
        let pod = kind("v1", "Pod");
        let manifest = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}});
        let old = admit_create(
            pod,
            manifest.clone(),
            Some("default"),
            &Directives::default(),
        )
        .expect("create");
        admit_update(pod, &old, manifest, None, &Directives::default())
            .expect("same manifest again");
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        admit_update(pod, &old, image, None, &Directives::default())
            .expect("image change is allowed");
        let mut command = old.clone();
        command["spec"]["containers"][0]["command"] = json!(["x"]);
        let e = admit_update(pod, &old, command, None, &Directives::default())
            .expect_err("spec change");
        assert!(
            e.message.contains("pod updates may not change fields"),
            "{}",
            e.message
        );
    }

    #[test]
    fn jobs_get_a_generated_selector() {
        let job = kind("batch/v1", "Job");
        let obj = admit_create(
            job,
            json!({"metadata": {"name": "migrate"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}),
            Some("default"),
            &Directives::default(),
        )
        .expect("create");
        let uid = obj["metadata"]["uid"].as_str().expect("uid");
        assert_eq!(
            obj["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            uid
        );
        assert_eq!(
            obj["spec"]["template"]["metadata"]["labels"]["job-name"],
            "migrate"
        );
        assert_eq!(
            obj["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "migrate"
        );
    }

    #[test]
    fn field_validation_modes() {
        use crate::admission::FieldValidation;
        let cm = kind("v1", "ConfigMap");
        let body = json!({"metadata": {"name": "a"}, "data": {}, "dta": {}});
        let strict = Directives {
            field_validation: FieldValidation::Strict,
            ..Default::default()
        };
        let e = admit_create(cm, body.clone(), Some("default"), &strict).expect_err("strict");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"dta\""
        );
        let warn = Directives::default();
        let obj = admit_create(cm, body, Some("default"), &warn).expect("warn");
        assert!(obj.get("dta").is_none());
        assert_eq!(warn.warnings.list(), vec!["unknown field \"dta\""]);
    }
}
