//! API discovery: `/version`, `/api`, `/apis`, the per-group-version resource
//! lists, and the aggregated discovery documents (apidiscovery.k8s.io/v2)
//! kubectl asks for first.

use serde_json::{Value, json};

use schemas::KindInfo;

/// The Kubernetes version korral speaks.
pub const KUBE_MAJOR: &str = "1";
/// The Kubernetes minor version korral speaks.
pub const KUBE_MINOR: &str = "32";

/// The content type of aggregated discovery v2.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Groups served besides those of the kinds' table: authorization (for
/// `kubectl auth can-i`) and policy (kubectl drain looks for it to use evictions).
const EXTRA_GROUPS: &[(&str, &str)] = &[("authorization.k8s.io", "v1"), ("policy", "v1")];

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
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

/// The group/versions served, core excluded.
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for k in schemas::served() {
        if !k.group.is_empty() && !out.contains(&(k.group, k.version)) {
            out.push((k.group, k.version));
        }
    }
    out.extend_from_slice(EXTRA_GROUPS);
    out
}

/// Whether a group/version is served.
pub fn serves(group: &str, version: &str) -> bool {
    (group.is_empty() && version == "v1") || groups().contains(&(group, version))
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `/apis`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv.clone()], "preferredVersion": gv}),
    )
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// A subresource's response kind and verbs.
fn subresource(info: &KindInfo, sub: &str) -> (Value, &'static [&'static str]) {
    let own = json!({"group": info.group, "version": info.version, "kind": info.kind});
    match sub {
        "scale" => (
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
            STATUS_VERBS,
        ),
        "binding" => (
            json!({"group": "", "version": "v1", "kind": "Binding"}),
            &["create"],
        ),
        "eviction" => (
            json!({"group": "policy", "version": "v1", "kind": "Eviction"}),
            &["create"],
        ),
        "log" => (
            json!({"group": "", "version": "v1", "kind": "Pod"}),
            &["get"],
        ),
        "exec" => (
            json!({"group": "", "version": "v1", "kind": "PodExecOptions"}),
            &["create", "get"],
        ),
        "proxy" => (
            json!({"group": "", "version": "v1", "kind": "NodeProxyOptions"}),
            &["get"],
        ),
        "finalize" => (own, &["update"]),
        "sync" => (own, &["create"]),
        _ => (own, STATUS_VERBS),
    }
}

fn kinds_in<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static KindInfo> + 'a {
    schemas::served()
        .iter()
        .filter(move |k| k.group == group && k.version == version)
}

fn extra_resources(group: &str) -> Vec<Value> {
    match group {
        "authorization.k8s.io" => vec![
            json!({"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]}),
            json!({"name": "selfsubjectrulesreviews", "singularName": "selfsubjectrulesreview", "namespaced": false, "kind": "SelfSubjectRulesReview", "verbs": ["create"]}),
        ],
        _ => Vec::new(),
    }
}

/// `/api/v1` and `/apis/<group>/<version>`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if !serves(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for k in kinds_in(group, version) {
        let mut r = json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": ALL_VERBS,
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        if !k.categories.is_empty() {
            r["categories"] = json!(k.categories);
        }
        resources.push(r);
        for sub in k.subresources {
            let (kind, verbs) = subresource(k, sub);
            let mut s = json!({
                "name": format!("{}/{sub}", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": kind["kind"],
                "verbs": verbs,
            });
            if kind["group"] != k.group || kind["version"] != k.version {
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

fn aggregated_group(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for k in kinds_in(group, version) {
        let mut r = json!({
            "resource": k.plural,
            "responseKind": {"group": k.group, "version": k.version, "kind": k.kind},
            "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": k.singular,
            "verbs": ALL_VERBS,
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
            "scope": "Cluster",
            "singularResource": extra["singularName"],
            "verbs": extra["verbs"],
        }));
    }
    json!({
        "metadata": {"name": group, "creationTimestamp": null},
        "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
    })
}

/// Aggregated discovery of `/api` (core) or `/apis` (every group).
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("", "v1")]
    } else {
        groups()
            .into_iter()
            .map(|(g, v)| aggregated_group(g, v))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_short_names_and_subresources() {
        let v = resource_list("", "v1").expect("core");
        let res = v["resources"].as_array().expect("resources");
        let pods = res.iter().find(|r| r["name"] == "pods").expect("pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let eviction = res
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .expect("eviction");
        assert_eq!(eviction["group"], "policy");
        let scale = resource_list("apps", "v1").expect("apps");
        let s = scale["resources"]
            .as_array()
            .expect("r")
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .cloned()
            .expect("scale");
        assert_eq!(s["kind"], "Scale");
        assert!(resource_list("apps", "v2").is_none());
    }

    #[test]
    fn groups_include_policy_and_authorization() {
        let names: Vec<String> = group_list()["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| g["name"].as_str().unwrap_or("").to_string())
            .collect();
        for g in [
            "apps",
            "coordination.k8s.io",
            "korral.dev",
            "authorization.k8s.io",
            "policy",
        ] {
            assert!(names.contains(&g.to_string()), "{g} in {names:?}");
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
