//! ValidatingAdmissionPolicy, as kube-apiserver's plugin applies it: every
//! binding of a policy whose match constraints (resource rules, namespace
//! and object selectors, match conditions) take the request evaluates the
//! policy's CEL validations with `object`, `oldObject`, `request`,
//! `params`, `namespaceObject` and `variables`; a failed validation denies
//! (kube's 422 "ValidatingAdmissionPolicy 'p' with binding 'b' denied
//! request: ..."), warns, or is audited, by the binding's actions.
//!
//! What needs the store (the namespace, the params object) is read first
//! ([`Policies::prepare`]); the validations then run on the object as it
//! will be written ([`Prepared::validate`]).

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
};
use schemas::{KindInfo, SelectorExt};
use serde_json::{Value, json};

use crate::admission::Warnings;
use crate::errors::{ApiError, ApiResult};
use crate::registry::{ListOptions, Registry};
use crate::watched::{Watched, decode_all};

const KINDS: &[(&str, &str)] = &[
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicy",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicyBinding",
    ),
];

/// The policies and bindings of the moment.
#[derive(Default)]
pub struct Policies {
    policies: Vec<ValidatingAdmissionPolicy>,
    bindings: Vec<ValidatingAdmissionPolicyBinding>,
}

/// The cache the server keeps them in.
pub type PolicyCache = Watched<Policies>;

/// A policy cache, empty until started.
pub fn cache() -> PolicyCache {
    Watched::new(KINDS, |lists| {
        let mut lists = lists.into_iter();
        Policies {
            policies: decode_all(lists.next().unwrap_or_default()),
            bindings: decode_all(lists.next().unwrap_or_default()),
        }
    })
}

/// The request being admitted.
pub struct Attributes<'a> {
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: &'a str,
    /// The kind of the resource addressed.
    pub info: &'a KindInfo,
    /// The subresource, if any.
    pub subresource: Option<&'a str>,
    /// The namespace, if any.
    pub namespace: Option<&'a str>,
    /// The object's name.
    pub name: &'a str,
    /// The user as kube's UserInfo (username, uid, groups, extra).
    pub user_info: Value,
    /// A dry run.
    pub dry_run: bool,
}

/// One binding that applies, with what it needs.
struct Entry {
    policy: ValidatingAdmissionPolicy,
    binding: ValidatingAdmissionPolicyBinding,
    params: Value,
}

/// What admission needs from the store for one request (the bindings that
/// apply, the namespace, its LimitRanges for a new pod), ready to check the
/// object as it will be written.
pub struct Prepared {
    entries: Vec<Entry>,
    namespace_object: Value,
    limit_ranges: Vec<k8s_openapi::api::core::v1::LimitRange>,
    quotas: Vec<k8s_openapi::api::core::v1::ResourceQuota>,
    holdings: crate::admission::quota::Holdings,
    request: Value,
    group: String,
    resource: String,
    name: String,
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

fn rule_matches(rule: &NamedRuleWithOperations, a: &Attributes<'_>) -> bool {
    let any = |v: &[String], x: &str| v.iter().any(|e| e == "*" || e == x);
    if !any(list(&rule.api_groups), &a.info.group)
        || !any(list(&rule.api_versions), &a.info.version)
        || !any(list(&rule.operations), a.operation)
    {
        return false;
    }
    let plural = a.info.plural.as_str();
    let resource_ok = list(&rule.resources).iter().any(|r| match a.subresource {
        None => r == "*" || r == plural,
        Some(sub) => {
            r == "*/*"
                || *r == format!("{plural}/{sub}")
                || *r == format!("{plural}/*")
                || *r == format!("*/{sub}")
        }
    });
    let names = list(&rule.resource_names);
    let name_ok = names.is_empty() || names.iter().any(|n| n == a.name);
    let scope_ok = match rule.scope.as_deref().unwrap_or("*") {
        "Cluster" => !a.info.namespaced,
        "Namespaced" => a.info.namespaced,
        _ => true,
    };
    resource_ok && name_ok && scope_ok
}

fn labels_of(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// Resource rules and the namespace selector (the object selector waits
/// for the object).
pub(crate) fn resources_match(
    m: &MatchResources,
    a: &Attributes<'_>,
    namespace_object: &Value,
) -> bool {
    let rules = m.resource_rules.as_deref().unwrap_or(&[]);
    if !rules.is_empty() && !rules.iter().any(|r| rule_matches(r, a)) {
        return false;
    }
    if m.exclude_resource_rules
        .iter()
        .flatten()
        .any(|r| rule_matches(r, a))
    {
        return false;
    }
    match (&m.namespace_selector, a.info.namespaced) {
        (Some(sel), true) => sel.is_empty() || sel.matches(&labels_of(namespace_object)),
        _ => true,
    }
}

fn object_selected(
    m: Option<&MatchResources>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> bool {
    let Some(sel) = m.and_then(|m| m.object_selector.as_ref()) else {
        return true;
    };
    sel.is_empty()
        || [object, old]
            .into_iter()
            .flatten()
            .any(|o| sel.matches(&labels_of(o)))
}

impl Policies {
    /// The bindings whose policy applies to `a`, with their params and the
    /// namespace read from the store.
    pub async fn prepare(&self, registry: &Registry, a: &Attributes<'_>) -> ApiResult<Prepared> {
        let namespace_object = match a.namespace.filter(|_| a.info.namespaced) {
            Some(ns) => {
                let info = schemas::lookup("v1", "Namespace")
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                registry
                    .get_cached(info, None, ns)
                    .await
                    .unwrap_or(Value::Null)
            }
            None => Value::Null,
        };
        let mut entries = Vec::new();
        for binding in &self.bindings {
            let Some(spec) = &binding.spec else { continue };
            let Some(policy) = self
                .policies
                .iter()
                .find(|p| p.metadata.name.as_deref() == spec.policy_name.as_deref())
            else {
                continue;
            };
            let Some(pspec) = &policy.spec else { continue };
            let constraints = pspec.match_constraints.clone().unwrap_or_default();
            if !resources_match(&constraints, a, &namespace_object) {
                continue;
            }
            if let Some(m) = &spec.match_resources
                && !resources_match(m, a, &namespace_object)
            {
                continue;
            }
            let params = match (&pspec.param_kind, &spec.param_ref) {
                (Some(kind), Some(r)) => {
                    let api_version = kind.api_version.as_deref().unwrap_or("");
                    let kind_name = kind.kind.as_deref().unwrap_or("");
                    let info = schemas::lookup(api_version, kind_name)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    let ns = r
                        .namespace
                        .as_deref()
                        .or(a.namespace)
                        .filter(|_| info.namespaced);
                    let found = match &r.name {
                        Some(n) => registry.get_cached(info, ns, n).await.ok(),
                        None => {
                            let page = registry.list(info, ns, &ListOptions::cached()).await?;
                            page.items.into_iter().find(|o| {
                                r.selector.as_ref().is_none_or(|s| s.matches(&labels_of(o)))
                            })
                        }
                    };
                    match found {
                        Some(p) => p,
                        None if r.parameter_not_found_action.as_deref() == Some("Allow") => {
                            continue;
                        }
                        None => {
                            return Err(ApiError::forbidden_message(format!(
                                "policy '{}' with binding '{}' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction",
                                policy.metadata.name.as_deref().unwrap_or(""),
                                binding.metadata.name.as_deref().unwrap_or("")
                            )));
                        }
                    }
                }
                _ => Value::Null,
            };
            entries.push(Entry {
                policy: policy.clone(),
                binding: binding.clone(),
                params,
            });
        }
        let request = json!({
            "kind": {"group": a.info.group, "version": a.info.version, "kind": a.info.kind},
            "resource": {"group": a.info.group, "version": a.info.version, "resource": a.info.plural},
            "subResource": a.subresource.unwrap_or(""),
            "name": a.name,
            "namespace": a.namespace.unwrap_or(""),
            "operation": a.operation,
            "userInfo": a.user_info,
            "dryRun": a.dry_run,
        });
        let limit_ranges = match a.namespace {
            Some(ns)
                if a.operation == "CREATE" && a.info.is("", "Pod") && a.subresource.is_none() =>
            {
                let info = schemas::lookup("v1", "LimitRange")
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                let page = registry
                    .list(info, Some(ns), &ListOptions::cached())
                    .await?;
                decode_all(page.items)
            }
            _ => Vec::new(),
        };
        let (quotas, holdings) = match a.namespace {
            Some(ns) if a.operation == "CREATE" && a.subresource.is_none() && a.info.namespaced => {
                quotas_and_holdings(registry, ns).await?
            }
            _ => (Vec::new(), Default::default()),
        };
        Ok(Prepared {
            entries,
            namespace_object,
            limit_ranges,
            quotas,
            holdings,
            request,
            group: a.info.group.clone(),
            resource: a.info.plural.clone(),
            name: a.name.to_string(),
        })
    }
}

/// A namespace's ResourceQuotas and, when it has any, the objects that
/// count toward them.
async fn quotas_and_holdings(
    registry: &Registry,
    ns: &str,
) -> ApiResult<(
    Vec<k8s_openapi::api::core::v1::ResourceQuota>,
    crate::admission::quota::Holdings,
)> {
    let lookup =
        |v: &str, k: &str| schemas::lookup(v, k).map_err(|e| ApiError::internal(e.to_string()));
    // the quotas as the cache has them (kube's quota admission reads its
    // informer); what counts toward them, when there are any, as of now
    let page = registry
        .list(
            lookup("v1", "ResourceQuota")?,
            Some(ns),
            &ListOptions::cached(),
        )
        .await?;
    let quotas: Vec<k8s_openapi::api::core::v1::ResourceQuota> = decode_all(page.items);
    let mut holdings = crate::admission::quota::Holdings::new();
    let kinds = registry.kinds().snapshot();
    for q in &quotas {
        for (plural, group) in crate::admission::quota::counted_kinds(q) {
            let key = if group.is_empty() {
                plural.clone()
            } else {
                format!("{plural}.{group}")
            };
            if holdings.contains_key(&key) {
                continue;
            }
            // any version of the resource holds the same objects
            let Some(info) = kinds
                .all()
                .iter()
                .find(|k| k.group == group && k.plural == plural)
                .cloned()
            else {
                continue;
            };
            let items = registry
                .list(&info, Some(ns), &ListOptions::default())
                .await?
                .items;
            holdings.insert(key, items);
        }
    }
    Ok((quotas, holdings))
}

/// What one validation concluded.
enum Verdict {
    Pass,
    Fail { message: String, reason: String },
}

impl Prepared {
    /// Whether any binding applies (nothing to evaluate otherwise).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The request's namespace as read (null for cluster-scoped requests).
    pub fn namespace_object(&self) -> &Value {
        &self.namespace_object
    }

    /// LimitRanger (defaults and limits of a new pod), the policies and Pod
    /// Security (from the namespace's labels) on the object as it will be
    /// written.
    pub fn admit(
        &self,
        kind: &str,
        object: &mut Value,
        old: Option<&Value>,
        warnings: &Warnings,
    ) -> ApiResult<()> {
        if kind == "Pod" && old.is_none() {
            crate::admission::limit_ranger::admit_pod(&self.limit_ranges, object)?;
        }
        if old.is_none() && !self.quotas.is_empty() {
            crate::admission::quota::admit(
                &self.quotas,
                &self.holdings,
                &self.resource,
                &self.group,
                object,
            )?;
        }
        self.validate(Some(object), old, warnings)?;
        let levels = crate::admission::pod_security::levels(&self.namespace_object);
        crate::admission::pod_security::admit(&levels, kind, old.is_none(), object, warnings)
    }

    /// Runs the validations of every applying binding on `object` (and
    /// `old`); a Deny action refuses with kube's error, Warn adds a warning.
    pub fn validate(
        &self,
        object: Option<&Value>,
        old: Option<&Value>,
        warnings: &Warnings,
    ) -> ApiResult<()> {
        for e in &self.entries {
            let m = e
                .binding
                .spec
                .as_ref()
                .and_then(|s| s.match_resources.as_ref());
            let c = e
                .policy
                .spec
                .as_ref()
                .and_then(|s| s.match_constraints.as_ref());
            if !object_selected(c, object, old) || !object_selected(m, object, old) {
                continue;
            }
            let policy_name = e.policy.metadata.name.as_deref().unwrap_or("");
            let binding_name = e.binding.metadata.name.as_deref().unwrap_or("");
            for verdict in self.evaluate(e, object, old)? {
                let Verdict::Fail { message, reason } = verdict else {
                    continue;
                };
                let actions = e
                    .binding
                    .spec
                    .as_ref()
                    .and_then(|s| s.validation_actions.clone())
                    .unwrap_or_default();
                if actions.iter().any(|a| a == "Warn") {
                    warnings.add(format!(
                        "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {message}"
                    ));
                }
                if actions.iter().any(|a| a == "Deny") {
                    return Err(self.denial(policy_name, binding_name, &message, &reason));
                }
            }
        }
        Ok(())
    }

    /// kube's denial: a Forbidden naming the object, re-reasoned (Invalid,
    /// 422, unless the validation names another reason), with the message
    /// as a cause.
    fn denial(&self, policy: &str, binding: &str, message: &str, reason: &str) -> ApiError {
        let text = format!(
            "ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}"
        );
        let mut e = ApiError::forbidden_message(format!(
            "{} {:?} is forbidden: {text}",
            if self.group.is_empty() {
                self.resource.clone()
            } else {
                format!("{}.{}", self.resource, self.group)
            },
            self.name
        ));
        let (code, reason) = match reason {
            "Unauthorized" => (401, "Unauthorized"),
            "Forbidden" => (403, "Forbidden"),
            "RequestEntityTooLarge" => (413, "RequestEntityTooLarge"),
            _ => (422, "Invalid"),
        };
        e.code = code;
        e.reason = reason;
        e.details = Some(Box::new(crate::status::StatusDetails {
            name: Some(self.name.clone()).filter(|n| !n.is_empty()),
            group: Some(self.group.clone()).filter(|g| !g.is_empty()),
            kind: Some(self.resource.clone()),
            causes: Some(vec![crate::status::StatusCause {
                reason: None,
                message: Some(text),
                field: None,
            }]),
            ..Default::default()
        }));
        e
    }

    /// Evaluates one binding: match conditions, variables, validations.
    fn evaluate(
        &self,
        e: &Entry,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<Vec<Verdict>> {
        use schemas::crd::cel;
        let Some(spec) = e.policy.spec.as_ref() else {
            return Ok(Vec::new());
        };
        let fail_closed = spec.failure_policy.as_deref() != Some("Ignore");
        let policy_name = e.policy.metadata.name.as_deref().unwrap_or("");
        let mut vars: Vec<(&str, Value)> = vec![
            ("object", object.cloned().unwrap_or(Value::Null)),
            ("oldObject", old.cloned().unwrap_or(Value::Null)),
            ("request", self.request.clone()),
            ("params", e.params.clone()),
            ("namespaceObject", self.namespace_object.clone()),
        ];
        // an expression that cannot be evaluated follows the failure policy
        let broken = |what: &str, why: String| -> ApiResult<Vec<Verdict>> {
            if fail_closed {
                Err(ApiError::forbidden_message(format!(
                    "policy '{policy_name}' denied request: {what}: {why}"
                )))
            } else {
                tracing::warn!(policy = policy_name, error = %why, "an admission policy expression failed; ignored by its failurePolicy");
                Ok(Vec::new())
            }
        };
        let mut variables = serde_json::Map::new();
        for v in spec.variables.iter().flatten() {
            let mut with_vars = vars.clone();
            with_vars.push(("variables", Value::Object(variables.clone())));
            let refs: Vec<(&str, &Value)> = with_vars.iter().map(|(n, v)| (*n, v)).collect();
            let value = match cel::compile(&v.expression)
                .map_err(|e| e.to_string())
                .and_then(|p| cel::evaluate_with(&p, &refs).map_err(|o| format!("{o:?}")))
            {
                Ok(val) => cel::from_cel(&val),
                Err(why) => return broken(&format!("variable {:?}", v.name), why),
            };
            variables.insert(v.name.clone(), value);
        }
        vars.push(("variables", Value::Object(variables)));
        let refs: Vec<(&str, &Value)> = vars.iter().map(|(n, v)| (*n, v)).collect();
        let check = |expr: &str| cel_bool(expr, &refs);
        for mc in spec.match_conditions.iter().flatten() {
            match check(&mc.expression) {
                Ok(true) => {}
                Ok(false) => return Ok(Vec::new()),
                Err(why) => return broken(&format!("matchCondition {:?}", mc.name), why),
            }
        }
        let mut out = Vec::new();
        for v in spec.validations.iter().flatten() {
            match check(&v.expression) {
                Ok(true) => out.push(Verdict::Pass),
                Ok(false) => {
                    let from_expression = v.message_expression.as_deref().and_then(|m| {
                        let p = cel::compile(m).ok()?;
                        match cel::evaluate_with(&p, &refs).ok()? {
                            cel::CelValue::String(s) => {
                                Some(s.trim().to_string()).filter(|s| !s.is_empty())
                            }
                            _ => None,
                        }
                    });
                    let message = v
                        .message
                        .clone()
                        .filter(|m| !m.is_empty())
                        .or(from_expression)
                        .unwrap_or_else(|| format!("failed expression: {}", v.expression));
                    out.push(Verdict::Fail {
                        message,
                        reason: v.reason.clone().unwrap_or_default(),
                    });
                }
                Err(why) => return broken(&format!("expression {:?}", v.expression), why),
            }
        }
        Ok(out)
    }
}

/// Evaluates a CEL expression that must give a bool over the named values
/// (policies' validations and match conditions, webhooks' match conditions).
pub(crate) fn cel_bool(expr: &str, refs: &[(&str, &Value)]) -> Result<bool, String> {
    use schemas::crd::cel;
    let program = cel::compile(expr)?;
    match cel::evaluate_with(&program, refs) {
        Ok(cel::CelValue::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("expression did not evaluate to a bool: {other:?}")),
        Err(o) => Err(format!("{o:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(resources: &[&str], ops: &[&str]) -> NamedRuleWithOperations {
        let s = |v: &[&str]| Some(v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        NamedRuleWithOperations {
            api_groups: s(&["apps"]),
            api_versions: s(&["v1"]),
            operations: s(ops),
            resources: s(resources),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_resources_subresources_and_operations() {
        let info = schemas::lookup("apps/v1", "Deployment").expect("kind");
        let a = |op, sub| Attributes {
            operation: op,
            info,
            subresource: sub,
            namespace: Some("default"),
            name: "web",
            user_info: json!({"username": "u"}),
            dry_run: false,
        };
        let main = rule(&["deployments"], &["CREATE", "UPDATE"]);
        assert!(rule_matches(&main, &a("CREATE", None)));
        assert!(!rule_matches(&main, &a("DELETE", None)));
        assert!(!rule_matches(&main, &a("UPDATE", Some("scale"))));
        assert!(rule_matches(
            &rule(&["deployments/scale"], &["*"]),
            &a("UPDATE", Some("scale"))
        ));
        assert!(rule_matches(
            &rule(&["*/*"], &["*"]),
            &a("UPDATE", Some("scale"))
        ));
        assert!(!rule_matches(
            &rule(&["*"], &["*"]),
            &a("UPDATE", Some("scale"))
        ));
    }
}
