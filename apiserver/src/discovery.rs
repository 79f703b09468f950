//! API discovery, built from the kinds served (built-in and custom, so it
//! follows CustomResourceDefinitions as they come and go): `/version`,
//! `/api`, `/apis`, the per-group-version resource lists (with
//! `storageVersionHash`), and the aggregated discovery documents
//! (apidiscovery.k8s.io/v2) kubectl asks for first. Documents are stable
//! between calls and carry ETags.

use base64::Engine;
use serde_json::{Value, json};

use schemas::KindInfo;
use schemas::kinds::Kinds;

/// The Kubernetes version korral speaks.
pub const KUBE_MAJOR: &str = "1";
/// The Kubernetes minor version korral speaks.
pub const KUBE_MINOR: &str = "33";

/// The content type of aggregated discovery v2.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Groups served besides those of the kinds: authorization (for `kubectl
/// auth can-i`) and authentication (`kubectl auth whoami`),
/// and the Metrics API (`crate::metrics_api`, metrics-server's group).
const EXTRA_GROUPS: &[(&str, &str)] = &[
    ("authorization.k8s.io", "v1"),
    ("authentication.k8s.io", "v1"),
    ("metrics.k8s.io", "v1beta1"),
];

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "emulationMajor": KUBE_MAJOR,
        "emulationMinor": KUBE_MINOR,
        "minCompatibilityMajor": KUBE_MAJOR,
        "minCompatibilityMinor": "32",
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+korral.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The groups served (core excluded), each with its versions, preferred first.
fn groups(kinds: &Kinds) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = kinds
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .collect();
    for (g, v) in EXTRA_GROUPS {
        if !out.iter().any(|(name, _)| name == g) {
            out.push((g.to_string(), vec![v.to_string()]));
        }
    }
    out
}

/// Whether a group/version is served.
pub fn serves(kinds: &Kinds, group: &str, version: &str) -> bool {
    (group.is_empty() && version == "v1")
        || groups(kinds)
            .iter()
            .any(|(g, vs)| g == group && vs.iter().any(|v| v == version))
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": gvs, "preferredVersion": gvs.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`.
pub fn group_list(kinds: &Kinds) -> Value {
    let groups: Vec<Value> = groups(kinds)
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(kinds: &Kinds, group: &str) -> Option<Value> {
    let (g, vs) = groups(kinds).into_iter().find(|(g, _)| g == group)?;
    let mut doc = group_doc(&g, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// A subresource's response kind and verbs.
fn subresource(info: &KindInfo, sub: &str) -> (Value, &'static [&'static str]) {
    let own = json!({"group": info.group, "version": info.version, "kind": info.kind});
    let k = |g: &str, v: &str, kind: &str| json!({"group": g, "version": v, "kind": kind});
    match sub {
        "scale" => (k("autoscaling", "v1", "Scale"), STATUS_VERBS),
        "binding" => (k("", "v1", "Binding"), &["create"]),
        "eviction" => (k("policy", "v1", "Eviction"), &["create"]),
        "log" => (k("", "v1", "Pod"), &["get"]),
        "exec" => (k("", "v1", "PodExecOptions"), &["create", "get"]),
        "attach" => (k("", "v1", "PodAttachOptions"), &["create", "get"]),
        "portforward" => (k("", "v1", "PodPortForwardOptions"), &["create", "get"]),
        "proxy" => (
            k("", "v1", &format!("{}ProxyOptions", info.kind)),
            &["create", "delete", "get", "patch", "update"],
        ),
        "ephemeralcontainers" => (own, STATUS_VERBS),
        "token" => (
            k("authentication.k8s.io", "v1", "TokenRequest"),
            &["create"],
        ),
        "approval" => (own, STATUS_VERBS),
        "finalize" => (own, &["update"]),
        "sync" => (own, &["create"]),
        _ => (own, STATUS_VERBS),
    }
}

/// Kubernetes' `storageVersionHash`: the first 8 bytes of the SHA-256 of
/// `<group>/<version>/<kind>` at the storage version, base64.
pub fn storage_version_hash(info: &KindInfo) -> String {
    let (group, version) = match info.storage_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", info.storage_version.as_str()),
    };
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{group}/{version}/{}", info.kind).as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

fn extra_resources(group: &str) -> Vec<Value> {
    match group {
        "authorization.k8s.io" => vec![
            json!({"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]}),
            json!({"name": "selfsubjectrulesreviews", "singularName": "selfsubjectrulesreview", "namespaced": false, "kind": "SelfSubjectRulesReview", "verbs": ["create"]}),
            json!({"name": "subjectaccessreviews", "singularName": "subjectaccessreview", "namespaced": false, "kind": "SubjectAccessReview", "verbs": ["create"]}),
            json!({"name": "localsubjectaccessreviews", "singularName": "localsubjectaccessreview", "namespaced": true, "kind": "LocalSubjectAccessReview", "verbs": ["create"]}),
        ],
        "authentication.k8s.io" => vec![
            json!({"name": "selfsubjectreviews", "singularName": "selfsubjectreview", "namespaced": false, "kind": "SelfSubjectReview", "verbs": ["create"]}),
            json!({"name": "tokenreviews", "singularName": "tokenreview", "namespaced": false, "kind": "TokenReview", "verbs": ["create"]}),
        ],
        "metrics.k8s.io" => crate::metrics_api::discovery_resources(),
        _ => Vec::new(),
    }
}

/// `/api/v1` and `/apis/<group>/<version>`.
pub fn resource_list(kinds: &Kinds, group: &str, version: &str) -> Option<Value> {
    if !serves(kinds, group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for k in kinds.in_group_version(group, version) {
        let mut r = json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": k.verbs,
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        if !k.categories.is_empty() {
            r["categories"] = json!(k.categories);
        }
        r["storageVersionHash"] = json!(storage_version_hash(k));
        resources.push(r);
        for sub in &k.subresources {
            let (kind, verbs) = subresource(k, sub);
            let mut s = json!({
                "name": format!("{}/{sub}", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": kind["kind"],
                "verbs": verbs,
            });
            if kind["group"] != k.group.as_str() || kind["version"] != k.version.as_str() {
                s["group"] = kind["group"].clone();
                s["version"] = kind["version"].clone();
            }
            resources.push(s);
        }
    }
    resources.extend(extra_resources(group));
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_version(kinds: &Kinds, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for k in kinds.in_group_version(group, version) {
        let mut r = json!({
            "resource": k.plural,
            "responseKind": {"group": k.group, "version": k.version, "kind": k.kind},
            "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": k.singular,
            "verbs": k.verbs,
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        if !k.categories.is_empty() {
            r["categories"] = json!(k.categories);
        }
        let subs: Vec<Value> = k
            .subresources
            .iter()
            .map(|sub| {
                let (kind, verbs) = subresource(k, sub);
                json!({"subresource": sub, "responseKind": kind, "verbs": verbs})
            })
            .collect();
        if !subs.is_empty() {
            r["subresources"] = Value::Array(subs);
        }
        resources.push(r);
    }
    for extra in extra_resources(group) {
        resources.push(json!({
            "resource": extra["name"],
            "responseKind": {"group": group, "version": version, "kind": extra["kind"]},
            "scope": if extra["namespaced"] == true { "Namespaced" } else { "Cluster" },
            "singularResource": extra["singularName"],
            "verbs": extra["verbs"],
        }));
    }
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// Aggregated discovery of `/api` (core) or `/apis` (every group).
pub fn aggregated(kinds: &Kinds, core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![json!({
            "metadata": {"creationTimestamp": null},
            "versions": [aggregated_version(kinds, "", "v1")],
        })]
    } else {
        groups(kinds)
            .iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> =
                    vs.iter().map(|v| aggregated_version(kinds, g, v)).collect();
                json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
            })
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// Whether the Accept header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p: Vec<&str> = part.split(';').map(str::trim).collect();
        p.contains(&"g=apidiscovery.k8s.io")
            && p.contains(&"v=v2")
            && p.contains(&"as=APIGroupDiscoveryList")
    })
}

/// The ETag of a document: a quoted upper-case SHA-512, as kube-apiserver's.
pub fn etag(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA512, body);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    format!("\"{hex}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> std::sync::Arc<Kinds> {
        schemas::Registry::builtin().snapshot()
    }

    #[test]
    fn core_list_has_short_names_subresources_and_hashes() {
        let v = resource_list(&kinds(), "", "v1").expect("core");
        let res = v["resources"].as_array().expect("resources");
        let pods = res.iter().find(|r| r["name"] == "pods").expect("pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
        let eviction = res
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .expect("eviction");
        assert_eq!(eviction["group"], "policy");
        let apps = resource_list(&kinds(), "apps", "v1").expect("apps");
        let s = apps["resources"]
            .as_array()
            .expect("r")
            .iter()
            .find(|r| r["name"] == "statefulsets/scale")
            .cloned()
            .expect("scale");
        assert_eq!(s["kind"], "Scale");
        assert!(resource_list(&kinds(), "apps", "v2").is_none());
    }

    #[test]
    fn groups_list_every_version_preferred_first() {
        let list = group_list(&kinds());
        let groups = list["groups"].as_array().expect("groups");
        let autoscaling = groups
            .iter()
            .find(|g| g["name"] == "autoscaling")
            .expect("autoscaling");
        assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
        assert_eq!(autoscaling["versions"].as_array().map(Vec::len), Some(2));
        for g in [
            "batch",
            "rbac.authorization.k8s.io",
            "apiextensions.k8s.io",
            "korral.dev",
            "policy",
        ] {
            assert!(groups.iter().any(|x| x["name"] == g), "{g}");
        }
    }

    #[test]
    fn aggregated_accept_detection() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json"));
    }
}
