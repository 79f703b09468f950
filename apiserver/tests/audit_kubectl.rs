//! The audit log through the real kubectl: a server started with an
//! audit.k8s.io/v1 Policy writes one Event per request at the level of its
//! first matching rule — the request body at Request level, metadata only
//! at Metadata, nothing for rules at None — and the event's `auditID` is
//! the response's `Audit-Id` header.

use crate::cluster;

use serde_json::Value;

use cluster::{Cluster, text};

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  verbs: ["get", "list", "watch"]
  resources:
  - group: ""
    resources: ["events"]
- level: Request
  resources:
  - group: ""
    resources: ["configmaps"]
- level: Metadata
"#;

#[test]
fn requests_are_audited_at_their_policy_level() {
    let dir = tempfile::tempdir().expect("dir");
    let policy = dir.path().join("policy.yaml");
    let log = dir.path().join("audit.log");
    std::fs::write(&policy, POLICY).expect("policy");
    let (p, l) = (policy.clone(), log.clone());
    let c = Cluster::start_with(move |config| config.audit = Some((p, l)));
    c.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=strict",
    ]);
    c.ok(&["get", "pods"]);
    c.ok(&["get", "events"]);
    let reply = c.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps/settings",
        &[],
        None,
    );
    assert_eq!(reply.code, 200);
    let audit_id = reply.header("audit-id").pop().expect("Audit-Id");

    let events: Vec<Value> = std::fs::read_to_string(&log)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event per line"))
        .collect();
    let find = |verb: &str, resource: &str| {
        events
            .iter()
            .find(|e| e["verb"] == verb && e["objectRef"]["resource"] == resource)
            .cloned()
    };
    let created = find("create", "configmaps").expect("the create is audited");
    assert_eq!(created["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(created["kind"], "Event");
    assert_eq!(created["level"], "Request");
    assert_eq!(created["stage"], "ResponseComplete");
    assert_eq!(created["user"]["username"], "korral-admin");
    assert_eq!(created["objectRef"]["namespace"], "default");
    assert_eq!(created["responseStatus"]["code"], 201);
    assert_eq!(
        created["requestObject"]["data"]["mode"], "strict",
        "{created}"
    );
    let listed = find("list", "pods").expect("the list is audited");
    assert_eq!(listed["level"], "Metadata");
    assert!(listed.get("requestObject").is_none());
    assert!(find("list", "events").is_none(), "events are not audited");
    assert!(
        events.iter().any(|e| e["auditID"] == audit_id.as_str()),
        "no event with the Audit-Id {audit_id}: {}",
        text(&std::fs::read(&log).unwrap_or_default())
    );
}
