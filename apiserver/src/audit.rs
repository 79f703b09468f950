//! The audit log, as kube-apiserver writes it with `--audit-policy-file`
//! and `--audit-log-path`: an `audit.k8s.io/v1` Policy decides each
//! request's level (None, Metadata, Request, RequestResponse) by its first
//! matching rule, and one `audit.k8s.io/v1` Event per request is appended
//! as a JSON line at the ResponseComplete stage — who did what to which
//! object, and the request body at Request level and above. The event's
//! `auditID` is the response's `Audit-Id` header.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::{Value, json};

/// An audit level, in increasing detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    /// Not logged.
    None,
    /// Who, what, when, the answer's code.
    Metadata,
    /// Also the request body.
    Request,
    /// Also the response body (korral logs the request body only).
    RequestResponse,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct Policy {
    #[serde(default)]
    rules: Vec<Rule>,
}

/// What the policy is asked about: who, and the request as the authoriser
/// sees it (a `path` and no resource for non-resource requests).
pub struct Request<'a> {
    /// The user.
    pub user: &'a str,
    /// Its groups.
    pub groups: &'a [String],
    /// The audit verb (`get`, `list`, `watch`, `create`, ...) and the object.
    pub req: crate::rbac::Request<'a>,
}

impl Rule {
    fn matches(&self, r: &Request<'_>) -> bool {
        let any = |list: &[String], x: &str| list.is_empty() || list.iter().any(|v| v == x);
        if !any(&self.users, r.user)
            || !(self.user_groups.is_empty()
                || self.user_groups.iter().any(|g| r.groups.contains(g)))
            || !any(&self.verbs, r.req.verb)
        {
            return false;
        }
        let path = r.req.path.unwrap_or("");
        if r.req.resource.is_empty() {
            // a non-resource request matches only rules about URLs (or none)
            return self.resources.is_empty()
                && self.namespaces.is_empty()
                && (self.non_resource_urls.is_empty()
                    || self.non_resource_urls.iter().any(|u| {
                        u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
                    }));
        }
        if !self.non_resource_urls.is_empty() {
            return false;
        }
        if !self.namespaces.is_empty()
            && !self
                .namespaces
                .iter()
                .any(|n| *n == r.req.namespace.unwrap_or(""))
        {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined = match r.req.subresource {
            Some(s) => format!("{}/{s}", r.req.resource),
            None => r.req.resource.to_string(),
        };
        self.resources.iter().any(|gr| {
            gr.group == r.req.group
                && (gr.resources.is_empty()
                    || gr.resources.iter().any(|x| {
                        *x == combined
                            || *x == "*"
                            || (r.req.subresource.is_some()
                                && (x.strip_prefix("*/") == r.req.subresource
                                    || *x == format!("{}/*", r.req.resource)))
                    }))
                && (gr.resource_names.is_empty()
                    || r.req
                        .name
                        .is_some_and(|n| gr.resource_names.iter().any(|x| x == n)))
        })
    }
}

/// The audit policy and the log it writes.
pub struct Audit {
    policy: Policy,
    out: Mutex<std::fs::File>,
}

impl Audit {
    /// Reads the policy (YAML or JSON) and opens the log for appending.
    pub fn open(policy_file: &Path, log_path: &Path) -> Result<Audit, String> {
        let text = std::fs::read_to_string(policy_file)
            .map_err(|e| format!("audit policy {}: {e}", policy_file.display()))?;
        let policy: Policy = serde_saphyr::from_str(&text)
            .map_err(|e| format!("audit policy {}: {e}", policy_file.display()))?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| format!("audit log {}: {e}", log_path.display()))?;
        Ok(Audit {
            policy,
            out: Mutex::new(out),
        })
    }

    /// The level of a request: its first matching rule's (None without one).
    pub fn level(&self, r: &Request<'_>) -> Level {
        self.policy
            .rules
            .iter()
            .find(|rule| rule.matches(r))
            .map_or(Level::None, |rule| rule.level)
    }

    /// Appends one event (a JSON line).
    pub fn record(&self, event: &Value) {
        let mut line = crate::status::encode(event);
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = out.write_all(&line) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
}

/// An `audit.k8s.io/v1` Event at the ResponseComplete stage.
#[allow(clippy::too_many_arguments)]
pub fn event(
    level: Level,
    audit_id: &str,
    uri: &str,
    r: &Request<'_>,
    version: &str,
    user_agent: &str,
    code: u16,
    request_object: Option<Value>,
    received: chrono::DateTime<chrono::Utc>,
) -> Value {
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let level_name = match level {
        Level::None => "None",
        Level::Metadata => "Metadata",
        Level::Request => "Request",
        Level::RequestResponse => "RequestResponse",
    };
    let mut e = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level_name,
        "auditID": audit_id,
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": r.req.verb,
        "user": {"username": r.user, "groups": r.groups},
        "userAgent": user_agent,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": ts(received),
        "stageTimestamp": ts(chrono::Utc::now()),
    });
    if !r.req.resource.is_empty() {
        let mut object_ref = json!({"resource": r.req.resource, "apiVersion": version});
        if let Some(ns) = r.req.namespace {
            object_ref["namespace"] = json!(ns);
        }
        if let Some(n) = r.req.name {
            object_ref["name"] = json!(n);
        }
        if !r.req.group.is_empty() {
            object_ref["apiGroup"] = json!(r.req.group);
        }
        if let Some(s) = r.req.subresource {
            object_ref["subresource"] = json!(s);
        }
        e["objectRef"] = object_ref;
    }
    if level >= Level::Request
        && let Some(body) = request_object
    {
        e["requestObject"] = body;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Audit {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("policy.yaml");
        std::fs::write(&p, yaml).expect("policy");
        Audit::open(&p, &dir.path().join("audit.log")).expect("audit")
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let a = policy(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  verbs: [get, list, watch]\n  resources:\n  - group: \"\"\n    resources: [events]\n- level: Request\n  resources:\n  - group: \"\"\n    resources: [configmaps, secrets]\n- level: Metadata\n",
        );
        let groups = vec!["system:authenticated".to_string()];
        let req = |verb, resource| Request {
            user: "jane",
            groups: &groups,
            req: crate::rbac::Request {
                verb,
                resource,
                namespace: Some("default"),
                ..Default::default()
            },
        };
        assert_eq!(a.level(&req("list", "events")), Level::None);
        assert_eq!(a.level(&req("create", "events")), Level::Metadata);
        assert_eq!(a.level(&req("create", "configmaps")), Level::Request);
        assert_eq!(a.level(&req("get", "pods")), Level::Metadata);
    }
}
