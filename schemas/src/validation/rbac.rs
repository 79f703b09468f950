//! Semantic validation of RBAC: Roles, ClusterRoles and their bindings,
//! with Kubernetes' messages. Names are path segments (`system:admin` is a
//! valid name).

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::validation::{Errs, NameRule, Validate, names, validate_meta, validate_selector};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn validate_rule(errs: &mut Errs, r: &PolicyRule, namespaced: bool, p: &FieldPath) {
    if r.verbs.is_empty() {
        errs.push(FieldError::required(
            p.key("verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = r.non_resource_urls.as_deref().unwrap_or_default();
    let non_empty = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if !urls.is_empty() {
        if namespaced {
            errs.push(FieldError::invalid(
                p.key("nonResourceURLs"),
                format!("{urls:?}"),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if non_empty(&r.api_groups) || non_empty(&r.resources) || non_empty(&r.resource_names) {
            errs.push(FieldError::invalid(
                p.key("nonResourceURLs"),
                format!("{urls:?}"),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if !non_empty(&r.api_groups) {
        errs.push(FieldError::required(
            p.key("apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if !non_empty(&r.resources) {
        errs.push(FieldError::required(
            p.key("resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

fn validate_rules(errs: &mut Errs, rules: Option<&Vec<PolicyRule>>, namespaced: bool) {
    for (i, r) in rules.into_iter().flatten().enumerate() {
        validate_rule(errs, r, namespaced, &FieldPath::fields("rules").index(i));
    }
}

impl Validate for Role {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::PathSegment,
            &FieldPath::fields("metadata"),
        );
        validate_rules(&mut errs, self.rules.as_ref(), true);
        errs.0
    }
}

impl Validate for ClusterRole {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::PathSegment,
            &FieldPath::fields("metadata"),
        );
        validate_rules(&mut errs, self.rules.as_ref(), false);
        if let Some(a) = &self.aggregation_rule {
            let ap = FieldPath::fields("aggregationRule.clusterRoleSelectors");
            let selectors = a.cluster_role_selectors.as_deref().unwrap_or_default();
            if selectors.is_empty() {
                errs.push(FieldError::required(
                    ap.clone(),
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
            for (i, s) in selectors.iter().enumerate() {
                validate_selector(&mut errs, s, &ap.index(i));
            }
        }
        errs.0
    }
}

fn validate_role_ref(errs: &mut Errs, r: &RoleRef, kinds: &[&str]) {
    let p = FieldPath::fields("roleRef");
    if r.api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            p.key("apiGroup"),
            &r.api_group,
            &[RBAC_GROUP],
        ));
    }
    if !kinds.contains(&r.kind.as_str()) {
        errs.push(FieldError::not_supported(p.key("kind"), &r.kind, kinds));
    }
    if r.name.is_empty() {
        errs.push(FieldError::required(p.key("name"), ""));
    } else {
        errs.check(p.key("name"), &r.name, names::path_segment(&r.name));
    }
}

fn validate_subjects(errs: &mut Errs, subjects: Option<&Vec<Subject>>, namespaced: bool) {
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        let p = FieldPath::fields("subjects").index(i);
        if s.name.is_empty() {
            errs.push(FieldError::required(p.key("name"), ""));
        }
        let group = s.api_group.as_deref().unwrap_or("");
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !s.name.is_empty() {
                    errs.check(p.key("name"), &s.name, names::dns1123_subdomain(&s.name));
                }
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(p.key("apiGroup"), group, &[""]));
                }
                if !namespaced && s.namespace.as_deref().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(p.key("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    errs.push(FieldError::not_supported(
                        p.key("apiGroup"),
                        group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                p.key("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

fn role_ref_changed(new: &RoleRef, old: &RoleRef) -> Vec<FieldError> {
    if new == old {
        return Vec::new();
    }
    vec![FieldError::invalid(
        FieldPath::fields("roleRef"),
        format!(
            "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
            new.api_group, new.kind, new.name
        ),
        "cannot change roleRef",
    )]
}

impl Validate for RoleBinding {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::PathSegment,
            &FieldPath::fields("metadata"),
        );
        validate_role_ref(&mut errs, &self.role_ref, &["Role", "ClusterRole"]);
        validate_subjects(&mut errs, self.subjects.as_ref(), true);
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        role_ref_changed(&self.role_ref, &old.role_ref)
    }
}

impl Validate for ClusterRoleBinding {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::PathSegment,
            &FieldPath::fields("metadata"),
        );
        validate_role_ref(&mut errs, &self.role_ref, &["ClusterRole"]);
        validate_subjects(&mut errs, self.subjects.as_ref(), false);
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        role_ref_changed(&self.role_ref, &old.role_ref)
    }
}
