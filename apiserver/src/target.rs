//! Parsing resource URLs (`/api/v1/namespaces/default/pods/web/status`,
//! `/apis/apps/v1/deployments`) into what they address.

use std::sync::Arc;

use schemas::KindInfo;
use schemas::kinds::Kinds;

use crate::errors::{ApiError, ApiResult};

/// What a resource URL addresses.
#[derive(Clone, Debug)]
pub struct Target {
    /// The kind.
    pub info: Arc<KindInfo>,
    /// The namespace in the URL, if any.
    pub namespace: Option<String>,
    /// The object name, if any.
    pub name: Option<String>,
    /// The subresource, if any.
    pub subresource: Option<String>,
}

/// Parses the path after `/api/` or `/apis/` (e.g. `v1/namespaces/ns/pods/p`
/// or `apps/v1/deployments`) against the kinds served. `grouped` tells which
/// prefix it came from.
pub fn parse(kinds: &Kinds, rest: &str, grouped: bool) -> ApiResult<Target> {
    let full = format!("/{}/{}", if grouped { "apis" } else { "api" }, rest);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, tail) = if grouped {
        match segs.as_slice() {
            [g, v, tail @ ..] => (*g, *v, tail),
            _ => return Err(ApiError::no_route(&full)),
        }
    } else {
        match segs.as_slice() {
            [v, tail @ ..] => ("", *v, tail),
            _ => return Err(ApiError::no_route(&full)),
        }
    };
    let find = |plural: &str| {
        kinds
            .by_resource(group, version, plural)
            .ok_or_else(|| ApiError::no_route(&full))
    };
    let t = |info: Arc<KindInfo>, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        info,
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
    };
    let target = match tail {
        // namespaces/{ns}/{resource}[/{name}[/{sub}]], unless {resource} is a namespace subresource
        ["namespaces", ns, sub] if group.is_empty() && matches!(*sub, "status" | "finalize") => {
            t(find("namespaces")?, None, Some(ns), Some(sub))
        }
        ["namespaces", ns, resource] => t(find(resource)?, Some(ns), None, None),
        ["namespaces", ns, resource, name] => t(find(resource)?, Some(ns), Some(name), None),
        ["namespaces", ns, resource, name, sub] => {
            t(find(resource)?, Some(ns), Some(name), Some(sub))
        }
        [resource] => t(find(resource)?, None, None, None),
        [resource, name] => t(find(resource)?, None, Some(name), None),
        [resource, name, sub] => t(find(resource)?, None, Some(name), Some(sub)),
        _ => return Err(ApiError::no_route(&full)),
    };
    if target.info.namespaced && target.name.is_some() && target.namespace.is_none() {
        return Err(ApiError::no_route(&full));
    }
    if !target.info.namespaced && target.namespace.is_some() {
        return Err(ApiError::no_route(&full));
    }
    if let Some(sub) = &target.subresource
        && !target.info.has_subresource(sub)
    {
        return Err(ApiError::no_route(&full));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rest: &str, grouped: bool) -> ApiResult<Target> {
        super::parse(&schemas::Registry::builtin().snapshot(), rest, grouped)
    }

    #[test]
    fn parses_kubernetes_url_shapes() {
        let t = parse("v1/namespaces/default/pods/web/status", false).expect("pod status");
        assert_eq!(
            (
                t.info.kind.as_str(),
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("Pod", Some("default"), Some("web"), Some("status"))
        );
        let t = parse("v1/pods", false).expect("all pods");
        assert_eq!(
            (t.info.kind.as_str(), t.namespace, t.name),
            ("Pod", None, None)
        );
        let t = parse("v1/namespaces/kube-system", false).expect("a namespace");
        assert_eq!(
            (t.info.kind.as_str(), t.name.as_deref()),
            ("Namespace", Some("kube-system"))
        );
        let t = parse("v1/namespaces/x/finalize", false).expect("finalize");
        assert_eq!(
            (
                t.info.kind.as_str(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("Namespace", Some("x"), Some("finalize"))
        );
        let t = parse("apps/v1/namespaces/ns/deployments/web/scale", true).expect("scale");
        assert_eq!(
            (t.info.kind.as_str(), t.subresource.as_deref()),
            ("Deployment", Some("scale"))
        );
        let t = parse("v1/nodes/n1/status", false).expect("node status");
        assert_eq!(
            (t.info.kind.as_str(), t.name.as_deref()),
            ("Node", Some("n1"))
        );
    }

    #[test]
    fn rejects_what_is_not_served() {
        // (Target has no Eq: compare the error codes)
        for (p, g) in [
            ("v1/widgets", false),
            ("apps/v1/pods", true),
            ("v1/pods/web", false),
            ("v1/namespaces/a/nodes", false),
            ("v1/namespaces/a/pods/p/nope", false),
            ("v2/pods", false),
        ] {
            assert_eq!(parse(p, g).expect_err(p).code, 404, "{p}");
        }
    }
}
