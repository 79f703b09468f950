//! One RBAC rule against one request, as Kubernetes' `RuleAllows`
//! (pkg/apis/rbac/v1/evaluation_helpers.go) decides it: verbs, API groups,
//! resources (`*`, `resource/subresource`, `*/subresource`), resource names,
//! and non-resource URLs (`*` as a whole final segment or suffix).

use k8s_openapi::api::rbac::v1::PolicyRule;

/// What is being asked, in authoriser terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// The verb (`get`, `list`, `create`, `bind`, `impersonate`, ...).
    pub verb: &'a str,
    /// The API group ("" for core).
    pub group: &'a str,
    /// The resource (plural), empty for a non-resource request.
    pub resource: &'a str,
    /// The subresource, if any.
    pub subresource: Option<&'a str>,
    /// The object's name, if the request names one.
    pub name: Option<&'a str>,
    /// The namespace, if any.
    pub namespace: Option<&'a str>,
    /// The URL path of a non-resource request (`/healthz`, `/version`).
    pub path: Option<&'a str>,
}

impl Request<'_> {
    /// Whether this asks about a resource (not a non-resource URL).
    pub fn is_resource(&self) -> bool {
        self.path.is_none()
    }
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(&rule.api_groups)
        .iter()
        .any(|g| g == "*" || g == group)
}

fn resource_matches(rule: &PolicyRule, resource: &str, subresource: Option<&str>) -> bool {
    let combined = match subresource {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    list(&rule.resources).iter().any(|r| {
        r == "*" || *r == combined || subresource.is_some_and(|s| r.strip_prefix("*/") == Some(s))
    })
}

fn name_matches(rule: &PolicyRule, name: Option<&str>) -> bool {
    let names = list(&rule.resource_names);
    names.is_empty() || name.is_some_and(|n| names.iter().any(|r| r == n))
}

fn url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(&rule.non_resource_urls)
        .iter()
        .any(|u| u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)))
}

/// Whether `rule` allows `req`.
pub fn allows(rule: &PolicyRule, req: &Request<'_>) -> bool {
    if !verb_matches(rule, req.verb) {
        return false;
    }
    match req.path {
        Some(path) => url_matches(rule, path),
        None => {
            group_matches(rule, req.group)
                && resource_matches(rule, req.resource, req.subresource)
                && name_matches(rule, req.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        PolicyRule {
            verbs: s(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: (!names.is_empty()).then(|| s(names)),
            non_resource_urls: None,
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn req<'a>(verb: &'a str, group: &'a str, resource: &'a str) -> Request<'a> {
        Request {
            verb,
            group,
            resource,
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_as_kubernetes_evaluates_them() {
        let pods_read = rule(&["get", "list"], &[""], &["pods"], &[]);
        assert!(allows(&pods_read, &req("get", "", "pods")));
        assert!(!allows(&pods_read, &req("delete", "", "pods")));
        assert!(!allows(&pods_read, &req("get", "apps", "pods")));
        // a subresource needs its own entry
        let log = Request {
            subresource: Some("log"),
            ..req("get", "", "pods")
        };
        assert!(!allows(&pods_read, &log));
        assert!(allows(&rule(&["get"], &[""], &["pods/log"], &[]), &log));
        assert!(allows(&rule(&["get"], &[""], &["*/log"], &[]), &log));
        assert!(allows(&rule(&["*"], &["*"], &["*"], &[]), &log));
        // resourceNames restrict to named requests
        let one = rule(&["get", "update"], &[""], &["configmaps"], &["settings"]);
        let named = |n| Request {
            name: Some(n),
            ..req("get", "", "configmaps")
        };
        assert!(allows(&one, &named("settings")));
        assert!(!allows(&one, &named("other")));
        assert!(!allows(&one, &req("list", "", "configmaps")));
    }

    #[test]
    fn non_resource_urls_match_whole_paths_or_star_suffixes() {
        let r = PolicyRule {
            verbs: s(&["get"]),
            non_resource_urls: Some(s(&["/healthz", "/api/*"])),
            ..Default::default()
        };
        let url = |p| Request {
            verb: "get",
            path: Some(p),
            ..Default::default()
        };
        assert!(allows(&r, &url("/healthz")));
        assert!(!allows(&r, &url("/healthz/etcd")));
        assert!(allows(&r, &url("/api/v1")));
        assert!(!allows(&r, &url("/apis")));
        // a resource rule never grants a URL
        assert!(!allows(
            &rule(&["*"], &["*"], &["*"], &[]),
            &url("/healthz")
        ));
    }
}
