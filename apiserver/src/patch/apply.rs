//! Server-side apply (`application/apply-patch+yaml`), following
//! sigs.k8s.io/structured-merge-diff: merge the configuration into the live
//! object, prune what the manager applied before and no longer applies,
//! detect conflicts with other managers, and record the manager's `Apply`
//! entry in `metadata.managedFields`. Also the 409 `Status` for conflicts.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemas::{KindInfo, TimeExt};

use crate::status::{Status, StatusCause, StatusDetails};

use super::error::PatchError;
use super::fieldset::{FieldSet, PathElement, canonical_json, render_path};
use super::managed::{
    BEFORE_FIRST_APPLY, Entry, cap_update_managers, decode, encode_into, record_update,
    server_fields, tracked, tracked_changes, without_managed_fields,
};
use super::merge_keys::{ListKind, Type, root_type};
use super::typed::{merge, remove_where};
use super::values::{drop_nulls, json_equal, type_name};

/// A field another manager owns with a different value than the one applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// Its operation: `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion of its entry.
    pub api_version: String,
    /// The subresource its entry was written through, if any.
    pub subresource: Option<String>,
    /// The field, as Kubernetes prints it: `.spec.replicas`.
    pub path: String,
}

impl Conflict {
    /// The manager as Kubernetes names it in messages: `"kubectl"` for an
    /// applier, `"kubectl-edit" using apps/v1` for an updater,
    /// `"kubectl" with subresource "scale" using apps/v1` through a subresource.
    pub fn manager_display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// Why an apply failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change: 409 Conflict (see
    /// [`conflict_status`]); `force` takes them over instead.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration is not acceptable (wrong kind, managedFields set).
    #[error(transparent)]
    Patch(#[from] PatchError),
}

impl ApplyError {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::Patch(e) => e.code(),
        }
    }

    /// The `Status.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Conflicts(_) => "Conflict",
            ApplyError::Patch(e) => e.reason(),
        }
    }

    /// The `Status` object to answer with.
    pub fn to_status(&self) -> Status {
        match self {
            ApplyError::Conflicts(c) => conflict_status(c),
            ApplyError::Patch(e) => e.to_status(),
        }
    }
}

/// Kubernetes' message for apply conflicts, word for word:
/// `Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas`,
/// or for several, one line per manager then `- path` per field.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager_display(),
            c.path
        );
    }
    let mut by_manager: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry(c.manager_display())
            .or_default()
            .push(&c.path);
    }
    let mut lines = Vec::new();
    for (manager, paths) in by_manager {
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(paths.into_iter().map(|p| format!("- {p}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The 409 `Status` Kubernetes returns for apply conflicts: reason
/// `Conflict`, one cause per field (`FieldManagerConflict`).
pub fn conflict_status(conflicts: &[Conflict]) -> Status {
    Status::failure(
        409,
        "Conflict",
        conflict_message(conflicts),
        Some(StatusDetails {
            causes: Some(
                conflicts
                    .iter()
                    .map(|c| StatusCause {
                        reason: Some("FieldManagerConflict".into()),
                        message: Some(format!("conflict with {}", c.manager_display())),
                        field: Some(c.path.clone()),
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
    )
}

/// Decodes an apply patch body: one object, as JSON or YAML; explicit nulls
/// are dropped (Kubernetes reads them as unset).
pub fn decode_apply_body(body: &[u8]) -> Result<Value, PatchError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| PatchError::BadRequest("the apply patch is not UTF-8 text".into()))?;
    let mut v = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(_) => {
            let decoded = schemas::decode_file("apply-patch.yaml", text);
            if let Some(d) = decoded.errors.first() {
                return Err(PatchError::BadRequest(format!(
                    "error decoding the apply patch: line {}: {}",
                    d.line, d.message
                )));
            }
            match <[_; 1]>::try_from(decoded.manifests) {
                Ok([m]) => m.object,
                Err(ms) => {
                    return Err(PatchError::BadRequest(format!(
                        "an apply patch must hold exactly one object, got {}",
                        ms.len()
                    )));
                }
            }
        }
    };
    if !v.is_object() {
        return Err(PatchError::BadRequest(format!(
            "an apply patch must be an object, got {}",
            type_name(&v)
        )));
    }
    drop_nulls(&mut v);
    Ok(v)
}

fn check_config(config: &Value, kind: &KindInfo) -> Result<(), PatchError> {
    if !config.is_object() {
        return Err(PatchError::BadRequest(format!(
            "an apply patch must be an object, got {}",
            type_name(config)
        )));
    }
    let api_version = config.get("apiVersion").and_then(Value::as_str);
    let k = config.get("kind").and_then(Value::as_str);
    if api_version != Some(kind.api_version.as_str()) || k != Some(kind.kind.as_str()) {
        return Err(PatchError::BadRequest(format!(
            "the apply patch is apiVersion {:?} kind {:?}, but the resource is {} {}",
            api_version.unwrap_or_default(),
            k.unwrap_or_default(),
            kind.api_version,
            kind.kind
        )));
    }
    if config.pointer("/metadata/managedFields").is_some() {
        return Err(PatchError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    Ok(())
}

/// Checks what structured-merge-diff checks when typing a configuration:
/// items of keyed lists have their key fields, and no two share a key.
fn check_list_keys(v: &Value, ty: Type, path: &mut Vec<PathElement>) -> Result<(), String> {
    match v {
        Value::Object(m) if !ty.is_atomic() => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                check_list_keys(child, ty.field(k), path)?;
                path.pop();
            }
        }
        Value::Array(items) => {
            let Some(list) = ty.list().filter(|l| l.kind != ListKind::Atomic) else {
                return Ok(());
            };
            let mut seen: Vec<PathElement> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if let ListKind::Map(keys) = list.kind
                    && let Some(missing) = keys
                        .iter()
                        .find(|k| **k != "protocol" && item.get(**k).is_none())
                {
                    return Err(format!(
                        "{}: element {i}: associative list with keys has an element that omits key field {missing:?} (and doesn't have default value)",
                        render_path(path)
                    ));
                }
                let pe = PathElement::for_item(list, i, item);
                if seen.contains(&pe) {
                    return Err(format!(
                        "{}: duplicate entries for key {pe}",
                        render_path(path)
                    ));
                }
                path.push(pe.clone());
                check_list_keys(item, list.elem, path)?;
                path.pop();
                seen.push(pe);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Server-side apply of `config` by `manager` to `live` (`None` creates).
///
/// Returns the new object with `metadata.managedFields` updated: the
/// manager's `Apply` entry holds exactly the fields in `config`; fields it
/// applied before and dropped are removed unless another manager owns them;
/// fields in `config` whose value differs from the live one and that another
/// manager owns are conflicts ([`ApplyError::Conflicts`]) unless `force`,
/// which takes them over. `status` is ignored on kinds with a status
/// subresource (it is written through `/status`).
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    kind: &KindInfo,
    api_version: &str,
    now: Time,
) -> Result<Value, ApplyError> {
    check_config(config, kind)?;
    let (ty, _) = root_type(kind);
    let mut config = config.clone();
    drop_nulls(&mut config);
    check_list_keys(&config, ty, &mut Vec::new()).map_err(|e| {
        let meta = |k: &str| {
            config
                .pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (ns, name) = (meta("namespace"), meta("name"));
        let (group_version, k) = (&kind.api_version, &kind.kind);
        PatchError::Invalid(format!(
            "failed to create typed patch object ({ns}/{name}; {group_version}, Kind={k}): {e}"
        ))
    })?;
    if kind.has_status_subresource()
        && let Some(m) = config.as_object_mut()
    {
        m.shift_remove("status");
    }
    let live_obj = live.map_or_else(|| Value::Object(Map::new()), without_managed_fields);
    let mut entries = live.map(decode).unwrap_or_default();
    if live.is_some() && entries.is_empty() {
        // Objects never applied to nor tracked: their fields go to
        // `before-first-apply`, so that applying over them conflicts.
        let changes = tracked_changes(&Value::Object(Map::new()), &live_obj, ty, kind, None);
        record_update(
            &mut entries,
            &changes,
            BEFORE_FIRST_APPLY,
            None,
            api_version,
            now.clone(),
        );
    }

    let mut merged = merge(&live_obj, &config, ty);
    let applied = FieldSet::from_value(&config, ty);
    let own = entries
        .iter()
        .position(|e| e.is(manager, "Apply", api_version, None));
    let last = own.map(|i| entries[i].fields.clone()).unwrap_or_default();
    let new_fields = tracked(&applied, kind, None);
    let own_is_new = own.is_none();
    let own = match own {
        Some(i) => {
            entries[i].fields = new_fields;
            entries[i].api_version = api_version.to_string();
            i
        }
        None => {
            entries.push(Entry {
                manager: manager.to_string(),
                operation: "Apply".into(),
                api_version: api_version.to_string(),
                time: None,
                subresource: None,
                fields: new_fields,
            });
            entries.len() - 1
        }
    };
    prune(&mut merged, &last, &entries, &applied, ty);

    let changes = tracked_changes(&live_obj, &merged, ty, kind, None);
    let changed = changes.changed();
    let mut conflicts = Vec::new();
    let mut clashes = FieldSet::new();
    for (i, e) in entries.iter_mut().enumerate() {
        if i == own {
            continue;
        }
        let clash = e.fields.intersection(&changed);
        clashes = clashes.union(&clash);
        conflicts.extend(clash.paths().iter().map(|p| Conflict {
            manager: e.manager.clone(),
            operation: e.operation.clone(),
            api_version: e.api_version.clone(),
            subresource: e.subresource.clone(),
            path: render_path(p),
        }));
        e.fields = e.fields.difference(&clash).difference(&changes.removed);
    }
    if !force && !conflicts.is_empty() && !allowed_by_last_applied(&live_obj, manager, &clashes, ty)
    {
        conflicts.sort_by(|a, b| (&a.manager, &a.operation).cmp(&(&b.manager, &b.operation)));
        return Err(ApplyError::Conflicts(conflicts));
    }
    if own_is_new || !json_equal(&live_obj, &merged) {
        entries[own].time = Some(now.text());
    }
    if manager == KUBECTL {
        sync_last_applied(&mut merged, &config);
    }
    cap_update_managers(&mut entries);
    encode_into(&mut merged, entries);
    Ok(merged)
}

/// The field manager of `kubectl apply --server-side`, which Kubernetes
/// helps migrate from client-side apply.
const KUBECTL: &str = "kubectl";
/// Client-side apply's record of the last applied configuration.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Kubernetes' `lastAppliedManager`: for `kubectl`, conflicts only on fields
/// listed in the client-side apply annotation are forced, so that switching
/// from `kubectl apply` to `kubectl apply --server-side` takes over what the
/// client-side applies owned.
fn allowed_by_last_applied(live: &Value, manager: &str, clashes: &FieldSet, ty: Type) -> bool {
    if manager != KUBECTL {
        return false;
    }
    let Some(last) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return false;
    };
    clashes
        .difference(&FieldSet::from_value(&last, ty))
        .is_empty()
}

/// Kubernetes' `lastAppliedUpdater`: after `kubectl` applies server-side, an
/// existing client-side apply annotation is rewritten to the configuration
/// just applied (Go's encoding: sorted keys, trailing newline), so a later
/// client-side apply computes its patch from it.
fn sync_last_applied(merged: &mut Value, config: &Value) {
    let Some(annotations) = merged
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if !annotations.contains_key(LAST_APPLIED) {
        return;
    }
    let mut applied = config.clone();
    if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.shift_remove(LAST_APPLIED);
        }
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            meta.shift_remove("annotations");
        }
    }
    annotations.insert(
        LAST_APPLIED.into(),
        Value::String(format!("{}\n", canonical_json(&applied))),
    );
}

/// Removes what the manager applied last time (`last`) and no longer
/// applies, unless a manager (itself included) still owns it; struct fields
/// go with their leftovers when nobody owns anything below them.
fn prune(merged: &mut Value, last: &FieldSet, entries: &[Entry], applied: &FieldSet, ty: Type) {
    if last.is_empty() {
        return;
    }
    let last = last.with_named_fields(ty);
    let owned = entries
        .iter()
        .fold(applied.union(&server_fields()), |acc, e| {
            acc.union(&e.fields)
        })
        .with_named_fields(ty);
    let remove = |p: &[PathElement]| last.contains(p) && !owned.contains(p);
    remove_where(merged, ty, &mut Vec::new(), &remove);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::managed::update_managed_fields;
    use serde_json::json;

    fn deployment() -> &'static KindInfo {
        schemas::lookup("apps/v1", "Deployment").expect("kind")
    }

    fn t(s: &str) -> Time {
        serde_json::from_value(json!(s)).expect("time")
    }

    fn now() -> Time {
        t("2024-05-06T07:08:09Z")
    }

    fn config(replicas: Option<i64>, image: &str) -> Value {
        let mut spec = json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": image}]}}
        });
        if let Some(r) = replicas {
            spec["replicas"] = json!(r);
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn run(
        live: Option<&Value>,
        cfg: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApplyError> {
        apply(live, cfg, manager, force, deployment(), "apps/v1", now())
    }

    fn entry<'v>(obj: &'v Value, manager: &str) -> &'v Value {
        obj["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .find(|e| e["manager"] == manager)
            .expect("manager entry")
    }

    #[test]
    fn create_by_apply_records_exactly_the_applied_fields() {
        let out = run(None, &config(Some(2), "nginx:1"), "kubectl", false).expect("apply");
        assert_eq!(out["spec"]["replicas"], 2);
        let e = entry(&out, "kubectl");
        assert_eq!(e["operation"], "Apply");
        assert_eq!(e["apiVersion"], "apps/v1");
        assert_eq!(e["time"], "2024-05-06T07:08:09Z");
        assert!(e.get("subresource").is_none());
        assert_eq!(
            e["fieldsV1"],
            json!({"f:spec": {
                "f:replicas": {}, "f:selector": {},
                "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                               "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
            }})
        );
    }

    #[test]
    fn another_manager_changing_replicas_then_apply_conflicts_and_force_takes_over() {
        let v1 = run(None, &config(Some(2), "nginx:1"), "kubectl", false).expect("apply");
        // `kubectl scale`-like update by another manager
        let mut scaled = v1.clone();
        scaled["spec"]["replicas"] = json!(5);
        let v2 = update_managed_fields(
            Some(&v1),
            &scaled,
            "kubectl-scale",
            None,
            deployment(),
            "apps/v1",
            now(),
        );
        assert!(
            !entry(&v2, "kubectl")["fieldsV1"]["f:spec"]
                .as_object()
                .expect("spec")
                .contains_key("f:replicas")
        );

        // applying replicas: 2 again conflicts with the updater
        let err =
            run(Some(&v2), &config(Some(2), "nginx:1"), "kubectl", false).expect_err("conflict");
        let ApplyError::Conflicts(cs) = &err else {
            panic!("want conflicts, got {err:?}")
        };
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].path, ".spec.replicas");
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
        );
        assert_eq!(err.code(), 409);
        let status = serde_json::to_value(conflict_status(cs)).expect("status");
        assert_eq!(status["reason"], "Conflict");
        assert_eq!(status["code"], 409);
        assert_eq!(
            status["details"]["causes"],
            json!([{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-scale\" using apps/v1", "field": ".spec.replicas"}])
        );

        // applying the live value is no conflict: ownership is shared
        let shared =
            run(Some(&v2), &config(Some(5), "nginx:1"), "kubectl", false).expect("same value");
        assert!(entry(&shared, "kubectl-scale")["fieldsV1"]["f:spec"]["f:replicas"].is_object());
        assert!(entry(&shared, "kubectl")["fieldsV1"]["f:spec"]["f:replicas"].is_object());

        // force takes ownership; the updater's emptied entry disappears
        let forced = run(Some(&v2), &config(Some(2), "nginx:1"), "kubectl", true).expect("force");
        assert_eq!(forced["spec"]["replicas"], 2);
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .expect("mf")
            .iter()
            .map(|e| e["manager"].as_str().expect("name"))
            .collect();
        assert_eq!(managers, ["kubectl"]);
    }

    #[test]
    fn an_applier_dropping_a_field_removes_it_unless_someone_else_owns_it() {
        let v1 = run(None, &config(Some(2), "nginx:1"), "kubectl", false).expect("apply");
        let v2 = run(Some(&v1), &config(None, "nginx:1"), "kubectl", false).expect("drop replicas");
        assert!(v2["spec"].get("replicas").is_none(), "{}", v2["spec"]);

        // a second applier sharing replicas keeps it alive
        let mut other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                               "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 2}});
        let v3 = run(Some(&v1), &other, "ci", false).expect("second applier");
        let v4 = run(Some(&v3), &config(None, "nginx:1"), "kubectl", false).expect("drop replicas");
        assert_eq!(v4["spec"]["replicas"], 2);
        // ... until it drops it too
        other["spec"] = json!({"paused": true});
        let v5 = run(Some(&v4), &other, "ci", false).expect("ci drops replicas");
        assert!(v5["spec"].get("replicas").is_none());
        assert_eq!(v5["spec"]["paused"], true);
    }

    #[test]
    fn dropping_a_container_removes_it_and_lists_merge_per_key() {
        let mut two = config(Some(1), "nginx:1");
        two["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]);
        let v1 = run(None, &two, "kubectl", false).expect("apply");
        // another manager adds an env var to `web`
        let mut edited = v1.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "value": "1"}]);
        let v2 = update_managed_fields(
            Some(&v1),
            &edited,
            "kubectl-edit",
            None,
            deployment(),
            "apps/v1",
            now(),
        );
        let v3 = run(Some(&v2), &config(Some(1), "nginx:2"), "kubectl", false).expect("apply");
        let containers = &v3["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers,
            &json!([{"name": "web", "image": "nginx:2", "env": [{"name": "A", "value": "1"}]}])
        );
    }

    #[test]
    fn conflicting_image_path_names_the_container() {
        let v1 = run(None, &config(Some(1), "nginx:1"), "kubectl", false).expect("apply");
        let err =
            run(Some(&v1), &config(Some(3), "nginx:2"), "helm", false).expect_err("conflicts");
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
        );
    }

    #[test]
    fn objects_without_managed_fields_belong_to_before_first_apply() {
        let mut live = config(Some(4), "nginx:1");
        live["metadata"]["uid"] = json!("u");
        let err =
            run(Some(&live), &config(Some(1), "nginx:1"), "kubectl", false).expect_err("conflict");
        assert!(
            err.to_string()
                .contains("conflict with \"before-first-apply\" using apps/v1: .spec.replicas"),
            "{err}"
        );
        let ok =
            run(Some(&live), &config(Some(4), "nginx:1"), "kubectl", false).expect("same values");
        assert_eq!(entry(&ok, "before-first-apply")["operation"], "Update");
    }

    #[test]
    fn kubectl_takes_over_from_client_side_apply() {
        // created by `kubectl apply` (client-side): the annotation and an
        // Update entry of kubectl-client-side-apply
        let mut csa = config(Some(2), "nginx:1");
        let last = canonical_json(&csa);
        csa["metadata"]["annotations"] = json!({LAST_APPLIED: last});
        let v1 = update_managed_fields(
            None,
            &csa,
            "kubectl-client-side-apply",
            None,
            deployment(),
            "apps/v1",
            now(),
        );

        // another manager cannot change replicas without force
        let err = run(Some(&v1), &config(Some(3), "nginx:1"), "helm", false).expect_err("conflict");
        assert!(
            err.to_string()
                .contains("\"kubectl-client-side-apply\" using apps/v1"),
            "{err}"
        );

        // kubectl --server-side may: replicas is in the last applied configuration
        let v2 = run(Some(&v1), &config(Some(3), "nginx:2"), "kubectl", false).expect("migration");
        assert_eq!(v2["spec"]["replicas"], 3);
        let annotation = v2["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .expect("annotation");
        let synced: Value = serde_json::from_str(annotation).expect("JSON");
        assert_eq!(synced, config(Some(3), "nginx:2"));
        assert!(annotation.ends_with('\n') && annotation.starts_with("{\"apiVersion\""));

        // ... but not fields the client-side apply never applied
        let mut other = v1.clone();
        other["spec"]["paused"] = json!(true);
        let v3 = update_managed_fields(
            Some(&v1),
            &other,
            "kubectl-edit",
            None,
            deployment(),
            "apps/v1",
            now(),
        );
        let mut unpause = config(Some(2), "nginx:1");
        unpause["spec"]["paused"] = json!(false);
        let err = run(Some(&v3), &unpause, "kubectl", false)
            .expect_err("paused is not in the annotation");
        assert!(err.to_string().ends_with(": .spec.paused"), "{err}");
    }

    #[test]
    fn duplicate_or_keyless_list_items_are_refused() {
        let mut c = config(Some(1), "nginx:1");
        c["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "web", "image": "a"}, {"name": "web", "image": "b"}]);
        let e = run(None, &c, "kubectl", false).expect_err("duplicates");
        assert_eq!(e.code(), 422);
        assert_eq!(
            e.to_string(),
            "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name=\"web\"]"
        );
        c["spec"]["template"]["spec"]["containers"] = json!([{"image": "a"}]);
        let e = run(None, &c, "kubectl", false).expect_err("no key");
        assert!(
            e.to_string().contains(
                "element 0: associative list with keys has an element that omits key field \"name\""
            ),
            "{e}"
        );
        // a port without protocol takes the default TCP as its key
        c["spec"]["template"]["spec"]["containers"] = json!([{"name": "web", "ports": [{"containerPort": 80}, {"containerPort": 80, "protocol": "UDP"}]}]);
        assert!(run(None, &c, "kubectl", false).is_ok());
    }

    #[test]
    fn bad_configs_are_bad_requests() {
        let mut c = config(Some(1), "x");
        c["kind"] = json!("ReplicaSet");
        assert_eq!(
            run(None, &c, "kubectl", false).expect_err("kind").code(),
            400
        );
        let mut c = config(Some(1), "x");
        c["metadata"]["managedFields"] = json!([]);
        assert_eq!(
            run(None, &c, "kubectl", false).expect_err("mf").to_string(),
            "metadata.managedFields must be nil"
        );
    }

    #[test]
    fn apply_bodies_may_be_yaml_or_json() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  creationTimestamp: null\nspec:\n  replicas: 2\n";
        let v = decode_apply_body(yaml.as_bytes()).expect("yaml");
        assert_eq!(v["spec"]["replicas"], 2);
        assert!(v["metadata"].get("creationTimestamp").is_none());
        let v = decode_apply_body(br#"{"apiVersion":"v1","kind":"ConfigMap","data":{"a":null}}"#)
            .expect("json");
        assert_eq!(v["data"], json!({}));
        assert!(decode_apply_body(b"a: [").is_err());
        assert!(decode_apply_body(b"a: 1\n---\nb: 2\n").is_err());
        assert!(decode_apply_body(b"- 1\n").is_err());
    }

    #[test]
    fn status_is_not_applied_through_the_main_resource() {
        let mut c = config(Some(1), "nginx:1");
        c["status"] = json!({"replicas": 9});
        let out = run(None, &c, "kubectl", false).expect("apply");
        assert!(out.get("status").is_none());
        assert!(entry(&out, "kubectl")["fieldsV1"].get("f:status").is_none());
    }
}
