//! Server-side printing: the `Table` (meta.k8s.io) responses `kubectl get`
//! asks for, with the columns and cells kube-apiserver's printers give each
//! built-in kind (always "wide": kubectl hides priority-1 columns), the
//! default Name/Created At table for kinds without a printer, and
//! CustomResourceDefinitions' `additionalPrinterColumns` (`jsonpath.rs`).

mod jsonpath;
mod kinds;

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

/// The description of the Name column (ObjectMeta.name's doc).
pub const D_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// The description of the Age column (ObjectMeta.creationTimestamp's doc).
pub const D_AGE: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// A column definition.
#[derive(Clone, Debug)]
pub struct Column {
    name: String,
    ty: &'static str,
    format: &'static str,
    priority: i32,
    description: String,
}

impl Column {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "type": self.ty, "format": self.format, "description": self.description, "priority": self.priority})
    }
}

/// A column: name, type, priority and description.
pub(crate) fn col(name: &str, ty: &'static str, priority: i32, description: &str) -> Column {
    Column {
        name: name.to_string(),
        ty,
        format: "",
        priority,
        description: description.to_string(),
    }
}

/// The Name column.
pub(crate) fn name_col() -> Column {
    Column {
        format: "name",
        ..col("Name", "string", 0, D_NAME)
    }
}

/// The Age column.
pub(crate) fn age_col() -> Column {
    col("Age", "string", 0, D_AGE)
}

/// Kubernetes' short human durations (`duration.HumanDuration`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
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
    if h < 192 {
        let d = h / 24;
        return if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        };
    }
    if h < 17520 {
        return format!("{}d", h / 24);
    }
    let d = h / 24;
    let y = d / 365;
    if h < 70080 {
        return if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        };
    }
    format!("{y}y")
}

fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The age of a timestamp (`translateTimestampSince`): `<unknown>` when absent.
pub(crate) fn age_of(ts: Option<&str>) -> String {
    match ts.and_then(parse_time) {
        Some(t) => human_duration((Utc::now() - t).num_seconds()),
        None => "<unknown>".into(),
    }
}

/// The time between two timestamps, humanised.
pub(crate) fn duration_between(from: &str, to: Option<&str>) -> String {
    let Some(start) = parse_time(from) else {
        return String::new();
    };
    let end = to.and_then(parse_time).unwrap_or_else(Utc::now);
    human_duration((end - start).num_seconds())
}

/// The string at a path, if any.
pub(crate) fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut n = v;
    for p in path {
        n = n.get(*p)?;
    }
    n.as_str()
}

/// The integer at a path, 0 when absent.
pub(crate) fn i(v: &Value, path: &[&str]) -> i64 {
    let mut n = v;
    for p in path {
        match n.get(*p) {
            Some(x) => n = x,
            None => return 0,
        }
    }
    n.as_i64().unwrap_or(0)
}

/// The list at a path, empty when absent.
pub(crate) fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    let mut n = v;
    for p in path {
        match n.get(*p) {
            Some(x) => n = x,
            None => return &[],
        }
    }
    n.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// An object's cells, and the row's object when not the default.
type RowFn = Box<dyn Fn(&Value) -> (Vec<Value>, Option<Value>)>;

/// The columns and cells of one kind.
struct Printer {
    columns: Vec<Column>,
    row: RowFn,
    /// Rows of an empty list are `null` (the default convertor) rather than `[]`.
    null_when_empty: bool,
}

fn printer_for(info: &KindInfo) -> Printer {
    if let Some(custom) = info.custom() {
        let columns = jsonpath::custom_columns(&custom.columns);
        let defs = columns.iter().map(|(c, _)| c.clone()).collect();
        return Printer {
            columns: defs,
            row: Box::new(move |obj| {
                let mut cells = vec![json!(s(obj, &["metadata", "name"]).unwrap_or(""))];
                // the first column is the name, which has no JSONPath
                for (c, path) in columns.iter().skip(1) {
                    cells.push(jsonpath::cell(obj, path, c.ty));
                }
                (cells, None)
            }),
            null_when_empty: false,
        };
    }
    match kinds::printer(info) {
        Some((columns, row)) => Printer {
            columns,
            row,
            null_when_empty: false,
        },
        // the default convertor: Name and Created At
        None => Printer {
            columns: vec![name_col(), col("Created At", "date", 0, D_AGE)],
            row: Box::new(|obj| {
                let created = s(obj, &["metadata", "creationTimestamp"])
                    .and_then(parse_time)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
                (
                    vec![
                        json!(s(obj, &["metadata", "name"]).unwrap_or("")),
                        json!(created),
                    ],
                    None,
                )
            }),
            null_when_empty: true,
        },
    }
}

/// The row object for `includeObject`.
fn row_object(obj: &Value, include: &str, version: &str) -> Value {
    match include {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": format!("meta.k8s.io/{version}"),
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// Renders objects as a meta.k8s.io Table (`version` is `v1` or `v1beta1`).
pub fn table(
    info: &KindInfo,
    items: &[Value],
    list_meta: Value,
    include_object: &str,
    version: &str,
) -> Value {
    let printer = printer_for(info);
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let (cells, conditions) = (printer.row)(obj);
            let mut row =
                json!({"cells": cells, "object": row_object(obj, include_object, version)});
            if let Some(c) = conditions {
                row["conditions"] = c;
            }
            row
        })
        .collect();
    let meta = if list_meta.as_object().is_some_and(|m| !m.is_empty()) {
        list_meta
    } else {
        match items
            .first()
            .and_then(|o| o.pointer("/metadata/resourceVersion"))
        {
            Some(rv) if items.len() == 1 => json!({"resourceVersion": rv}),
            _ => json!({}),
        }
    };
    let columns: Vec<Value> = printer.columns.iter().map(Column::to_json).collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": if rows.is_empty() && printer.null_when_empty { Value::Null } else { Value::Array(rows) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_kubernetes() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(120), "2m");
        assert_eq!(human_duration(182), "3m2s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600), "3h");
        assert_eq!(human_duration(7 * 3600 + 59 * 60), "7h59m");
        assert_eq!(human_duration(47 * 3600), "47h");
        assert_eq!(human_duration(2 * 86400), "2d");
        assert_eq!(human_duration(7 * 86400 + 23 * 3600), "7d23h");
        assert_eq!(human_duration(9 * 86400), "9d");
        assert_eq!(human_duration(3 * 365 * 86400 + 12 * 86400), "3y12d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    fn cells(api: &str, kind: &str, obj: Value) -> Vec<Value> {
        let info = schemas::lookup(api, kind).expect("kind");
        let t = table(info, &[obj], json!({}), "None", "v1");
        t["rows"][0]["cells"].as_array().cloned().expect("cells")
    }

    #[test]
    fn every_builtin_kind_prints_as_many_cells_as_columns() {
        for info in schemas::builtin_kinds() {
            let obj = json!({"apiVersion": info.api_version, "kind": info.kind, "metadata": {"name": "x", "creationTimestamp": "2024-01-01T00:00:00Z"}});
            let t = table(info, &[obj], json!({}), "Metadata", "v1");
            let cols = t["columnDefinitions"].as_array().map(Vec::len);
            let cells = t["rows"][0]["cells"].as_array().map(Vec::len);
            assert_eq!(cols, cells, "{} {}", info.api_version, info.kind);
            assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        }
    }

    #[test]
    fn workloads_print_like_kubectl_expects() {
        let d = cells(
            "apps/v1",
            "Deployment",
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
        );
        assert_eq!(d[1], "2/3");
        assert_eq!(d[2], 3);
        assert_eq!(d[5], "nginx");
        assert_eq!(d[7], "app=web");
        let job = cells(
            "batch/v1",
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"completions": 1},
                "status": {"succeeded": 1, "startTime": "2024-01-01T10:00:00Z", "completionTime": "2024-01-01T10:00:42Z",
                    "conditions": [{"type": "Complete", "status": "True"}]}}),
        );
        assert_eq!(&job[1..4], &[json!("Complete"), json!("1/1"), json!("42s")]);
        let cj = cells(
            "batch/v1",
            "CronJob",
            json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *", "suspend": false,
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "hello", "image": "busybox"}]}}}}}}),
        );
        assert_eq!(
            &cj[1..6],
            &[
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(0),
                json!("<none>")
            ]
        );
        let hpa = cells(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]},
                "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 23}}}]}}),
        );
        assert_eq!(
            &hpa[1..6],
            &[
                json!("Deployment/web"),
                json!("cpu: 23%/50%"),
                json!("1"),
                json!(10),
                json!(2)
            ]
        );
        let pvc = cells(
            "v1",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "c"}, "spec": {"volumeName": "pv-1", "storageClassName": "standard", "volumeMode": "Filesystem"},
                "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}}),
        );
        assert_eq!(
            &pvc[1..7],
            &[
                json!("Bound"),
                json!("pv-1"),
                json!("1Gi"),
                json!("RWO"),
                json!("standard"),
                json!("<unset>")
            ]
        );
    }

    #[test]
    fn kinds_without_printers_show_created_at() {
        let info = schemas::lookup("rbac.authorization.k8s.io/v1", "Role").expect("role");
        let t = table(
            info,
            &[
                json!({"metadata": {"name": "pod-reader", "creationTimestamp": "2025-01-01T00:00:00Z"}}),
            ],
            json!({}),
            "None",
            "v1",
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["pod-reader", "2025-01-01T00:00:00Z"])
        );
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        let empty = table(info, &[], json!({"resourceVersion": "5"}), "None", "v1");
        assert!(empty["rows"].is_null());
    }
}
