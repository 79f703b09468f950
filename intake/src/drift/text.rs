//! Drift for people: one headline per object, kubectl-diff style —
//! `~ Deployment/web spec.replicas: 3 → 5 (by kubectl-scale, 12s ago)`,
//! `+` for objects missing from the cluster, `-` for objects the source no
//! longer declares — then the remaining fields, then a summary line.

use std::fmt::Write;

use chrono::Utc;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemas::TimeExt;
use serde_json::Value;

use crate::drift::{Drift, FieldChange};
use crate::object::ObjectKey;

/// A value as printed: `(absent)`, plain scalars, compact JSON (cut at 100 characters).
pub fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) if !s.is_empty() && !s.contains(char::is_whitespace) => s.clone(),
        Some(other) => {
            let s = other.to_string();
            if s.chars().count() > 100 {
                format!("{}…", s.chars().take(100).collect::<String>())
            } else {
                s
            }
        }
    }
}

/// `12s ago`, `3m ago`, `2h ago`, `4d ago`.
pub fn ago(t: &Time) -> String {
    let secs = (Utc::now() - t.utc()).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// `spec.replicas: 3 → 5 (by kubectl-scale, 12s ago)`.
pub fn change_line(c: &FieldChange) -> String {
    let mut s = format!(
        "{}: {} → {}",
        c.path,
        show(c.desired.as_ref()),
        show(c.live.as_ref())
    );
    match (&c.manager, &c.time) {
        (Some(m), Some(t)) => {
            let _ = write!(s, " (by {m}, {})", ago(t));
        }
        (Some(m), None) => {
            let _ = write!(s, " (by {m})");
        }
        _ => {}
    }
    s
}

/// The whole report; `home` is the source's namespace (others are named).
pub fn render(drift: &Drift, home: &str, source: &str) -> String {
    let mut out = String::new();
    let from = |k: &ObjectKey| crate::diff::from_suffix(&drift.built_from.get(k).cloned());
    for m in &drift.modified {
        let name = format!("{}{}", m.key.short(home), from(&m.key));
        let Some(first) = m.changes.first() else {
            continue;
        };
        let more = m.changes.len() - 1;
        let _ = write!(out, "~ {name} {}", change_line(first));
        if more > 0 {
            let _ = write!(
                out,
                " and {more} more field{}:",
                if more == 1 { "" } else { "s" }
            );
        }
        out.push('\n');
        for c in m.changes.iter().skip(1) {
            let _ = writeln!(out, "    {}", change_line(c));
        }
    }
    for (_, k) in &drift.missing {
        let _ = writeln!(
            out,
            "+ {}{}: missing from the cluster",
            k.short(home),
            from(k)
        );
    }
    for (_, k) in &drift.extra {
        let _ = writeln!(
            out,
            "- {}: owned by this source but no longer declared",
            k.short(home)
        );
    }
    let rev = short_revision(&drift.revision);
    if drift.is_clean() {
        let _ = writeln!(
            out,
            "no drift: {} object{} of {source} match revision {rev}",
            drift.objects,
            if drift.objects == 1 { "" } else { "s" }
        );
    } else {
        let _ = writeln!(
            out,
            "{source}: {} object{} drifted from revision {rev} ({} modified, {} missing, {} extra; {} declared)",
            drift.count(),
            if drift.count() == 1 { "" } else { "s" },
            drift.modified.len(),
            drift.missing.len(),
            drift.extra.len(),
            drift.objects
        );
    }
    out
}

/// The first 12 characters of a commit SHA; a folder digest as `sha256:` + 12.
pub fn short_revision(r: &str) -> String {
    match r.strip_prefix("sha256:") {
        Some(h) => format!("sha256:{}", h.chars().take(12).collect::<String>()),
        None => r.chars().take(12).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::ObjectDiff;
    use crate::object::ObjectKey;
    use serde_json::json;

    #[test]
    fn headline_names_field_values_manager_and_age() {
        let info = schemas::Registry::builtin()
            .lookup("apps/v1", "Deployment")
            .expect("kind");
        let t = schemas::time::from_utc(Utc::now() - chrono::Duration::seconds(12));
        let drift = Drift {
            revision: "0123456789abcdef0123".into(),
            objects: 3,
            modified: vec![ObjectDiff {
                info,
                key: ObjectKey {
                    group: "apps".into(),
                    kind: "Deployment".into(),
                    namespace: Some("default".into()),
                    name: "web".into(),
                },
                changes: vec![FieldChange {
                    path: "spec.replicas".into(),
                    live_pointer: "/spec/replicas".into(),
                    desired: Some(json!(3)),
                    live: Some(json!(5)),
                    manager: Some("kubectl-scale".into()),
                    time: Some(t),
                }],
                resource_version: None,
            }],
            ..Default::default()
        };
        let text = render(&drift, "default", "default/demo");
        let first = text.lines().next().expect("a line");
        assert!(
            first == "~ Deployment/web spec.replicas: 3 → 5 (by kubectl-scale, 12s ago)"
                || first == "~ Deployment/web spec.replicas: 3 → 5 (by kubectl-scale, 13s ago)",
            "{text}"
        );
        assert!(
            text.contains("1 object drifted from revision 0123456789ab"),
            "{text}"
        );
        assert_eq!(show(Some(&json!("two words"))), "\"two words\"");
        assert_eq!(show(None), "(absent)");
    }
}
