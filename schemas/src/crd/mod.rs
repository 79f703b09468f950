//! Custom resources: the kinds a CustomResourceDefinition defines, one
//! [`KindInfo`] per served version, validated and defaulted by the
//! version's structural schema (`openapi.rs` turns it into the JSON Schema
//! every kind is validated with), its list types and its CEL rules
//! (`walk.rs`, `cel.rs`). `definition.rs` validates the definition itself.

pub mod cel;
mod definition;
mod openapi;
mod walk;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};
use serde_json::Value;

use crate::diagnostic::{Class, Diagnostic};
use crate::field_error::FieldError;
use crate::kinds::{Behavior, KindInfo, Registry};
use crate::path::FieldPath;

pub use definition::{validate_definition, validate_definition_update};
pub use walk::RuleWarning;

/// A compiled `x-kubernetes-validations` rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule's source.
    pub rule: String,
    /// The message, when given.
    pub message: Option<String>,
    /// The message expression, compiled.
    pub message_expression: Option<::cel::Program>,
    /// `FieldValueInvalid` (default), `FieldValueForbidden`, `FieldValueRequired`, `FieldValueDuplicate`.
    pub reason: Option<String>,
    /// A path relative to the node the error is reported at.
    pub field_path: Option<String>,
    /// Whether the rule reads `oldSelf` (a transition rule).
    pub uses_old_self: bool,
    /// Whether a transition rule also runs without an old value.
    pub optional_old_self: bool,
    program: ::cel::Program,
}

/// Scale subresource paths (`.spec.replicas`, ...).
#[derive(Clone, Debug, Default)]
pub struct ScalePaths {
    /// Where the desired replicas are.
    pub spec_replicas: String,
    /// Where the observed replicas are.
    pub status_replicas: String,
    /// Where the label selector string is, if anywhere.
    pub label_selector: Option<String>,
}

/// What a CustomResourceDefinition says about one served version of its kind.
#[derive(Debug, Default)]
pub struct CustomKind {
    /// The CustomResourceDefinition's name (`<plural>.<group>`).
    pub crd_name: String,
    /// The version's `openAPIV3Schema` as written.
    pub schema: Value,
    /// `additionalPrinterColumns`.
    pub columns: Vec<CustomResourceColumnDefinition>,
    /// The scale subresource's paths.
    pub scale: Option<ScalePaths>,
    /// Rules by the JSON pointer of their schema node.
    rules: HashMap<String, Vec<CompiledRule>>,
    /// Rules that do not compile (reported when the definition is validated).
    pub rule_errors: Vec<FieldError>,
    /// Fields `fieldSelector` may name (`selectableFields`, without the leading dot).
    pub selectable_fields: Vec<String>,
}

impl CustomKind {
    /// The JSON Schema objects of this kind are validated with.
    pub fn json_schema(&self, info: &KindInfo) -> Value {
        openapi::to_json_schema_root(&self.schema, info)
    }

    /// Applies the schema's defaults.
    pub fn apply_defaults(&self, _info: &KindInfo, mut v: Value) -> Value {
        walk::apply_defaults(&self.schema, &mut v);
        v
    }

    /// The rules beyond the schema: metadata, list uniqueness and CEL rules
    /// (with `old` on updates, for transition rules).
    pub fn validate(&self, info: &KindInfo, v: &Value, old: Option<&Value>) -> Vec<FieldError> {
        self.validate_with_warnings(info, v, old).0
    }

    /// [`CustomKind::validate`], also returning the rules korral could not evaluate.
    pub fn validate_with_warnings(
        &self,
        _info: &KindInfo,
        v: &Value,
        old: Option<&Value>,
    ) -> (Vec<FieldError>, Vec<RuleWarning>) {
        let mut errors = Vec::new();
        if let Some(meta) = v.get("metadata") {
            match crate::kinds::decode_typed::<
                k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            >(meta)
            {
                Ok(m) => {
                    let mut errs = crate::validation::Errs::default();
                    crate::validation::validate_meta(
                        &mut errs,
                        &m,
                        crate::validation::NameRule::Subdomain,
                        &FieldPath::fields("metadata"),
                    );
                    errors.extend(errs.0);
                }
                Err(mut e) => {
                    e.path = FieldPath::fields("metadata").join(&e.path);
                    errors.push(e);
                }
            }
        }
        errors.extend(walk::list_types(&self.schema, v));
        if let Some(scale) = &self.scale {
            errors.extend(walk::scale_values(scale, v));
        }
        let (rule_errors, warnings) = walk::rules(&self.schema, &self.rules, v, old);
        errors.extend(rule_errors);
        (errors, warnings)
    }
}

/// Builds a kind's compiled rules from its schema.
fn compile_rules(schema: &Value) -> (HashMap<String, Vec<CompiledRule>>, Vec<FieldError>) {
    let mut rules = HashMap::new();
    let mut errors = Vec::new();
    walk::each_rule(schema, &mut |pointer, path, index, r| {
        let rp = path.key("x-kubernetes-validations").index(index);
        let rule = r
            .get("rule")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if rule.trim().is_empty() {
            errors.push(FieldError::required(
                rp.key("rule"),
                "rule is not specified",
            ));
            return;
        }
        let program = match cel::compile(&rule) {
            Ok(p) => p,
            Err(e) => {
                errors.push(FieldError::invalid(
                    rp.key("rule"),
                    &rule,
                    format!("compilation failed: {e}"),
                ));
                return;
            }
        };
        let message_expression = r
            .get("messageExpression")
            .and_then(Value::as_str)
            .filter(|m| !m.trim().is_empty())
            .and_then(|m| match cel::compile(m) {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.push(FieldError::invalid(
                        rp.key("messageExpression"),
                        m,
                        format!("messageExpression compilation failed: {e}"),
                    ));
                    None
                }
            });
        let message = r.get("message").and_then(Value::as_str).map(str::to_string);
        if message.as_deref().is_some_and(|m| m.trim().is_empty()) {
            errors.push(FieldError::invalid(
                rp.key("message"),
                message.as_deref().unwrap_or(""),
                "message must be non-empty if specified",
            ));
        }
        if message.as_deref().is_some_and(|m| m.contains('\n')) {
            errors.push(FieldError::invalid(
                rp.key("message"),
                message.as_deref().unwrap_or(""),
                "message must not contain line breaks",
            ));
        }
        let reason = r.get("reason").and_then(Value::as_str).map(str::to_string);
        if let Some(rs) = reason.as_deref()
            && !matches!(
                rs,
                "FieldValueRequired"
                    | "FieldValueForbidden"
                    | "FieldValueInvalid"
                    | "FieldValueDuplicate"
            )
        {
            errors.push(FieldError::not_supported(
                rp.key("reason"),
                rs,
                &[
                    "FieldValueRequired",
                    "FieldValueForbidden",
                    "FieldValueInvalid",
                    "FieldValueDuplicate",
                ],
            ));
        }
        let uses_old_self = program.references().has_variable("oldSelf");
        let optional_old_self = r.get("optionalOldSelf") == Some(&Value::Bool(true));
        if optional_old_self && !uses_old_self {
            errors.push(FieldError::invalid(
                rp.key("optionalOldSelf"),
                true,
                "may not be set if oldSelf is not used in rule",
            ));
        }
        rules
            .entry(pointer.to_string())
            .or_insert_with(Vec::new)
            .push(CompiledRule {
                rule,
                message,
                message_expression,
                reason,
                field_path: r
                    .get("fieldPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                uses_old_self,
                optional_old_self,
                program,
            });
    });
    (rules, errors)
}

/// The kinds a CustomResourceDefinition defines: one per served version.
/// The definition is assumed valid (see [`validate_definition`]).
pub fn kinds_of(crd: &CustomResourceDefinition) -> Vec<Arc<KindInfo>> {
    let spec = &crd.spec;
    let names = &spec.names;
    let singular = names
        .singular
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| names.kind.to_ascii_lowercase());
    let storage = spec
        .versions
        .iter()
        .find(|v| v.storage)
        .map(|v| v.name.clone())
        .unwrap_or_default();
    let crd_name = crd.metadata.name.clone().unwrap_or_default();
    let served: Vec<&str> = spec
        .versions
        .iter()
        .filter(|v| v.served && !v.deprecated.unwrap_or(false))
        .map(|v| v.name.as_str())
        .collect();
    spec.versions
        .iter()
        .filter(|v| v.served)
        .map(|v| {
            let schema = v
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or_else(|| serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
            let (rules, rule_errors) = compile_rules(&schema);
            let subresources = v.subresources.as_ref();
            let scale = subresources.and_then(|s| s.scale.as_ref()).map(|s| ScalePaths {
                spec_replicas: s.spec_replicas_path.clone(),
                status_replicas: s.status_replicas_path.clone(),
                label_selector: s.label_selector_path.clone(),
            });
            let custom = CustomKind {
                crd_name: crd_name.clone(),
                schema,
                columns: v.additional_printer_columns.clone().unwrap_or_default(),
                scale,
                rules,
                rule_errors,
                selectable_fields: v
                    .selectable_fields
                    .iter()
                    .flatten()
                    .map(|f| f.json_path.trim_start_matches('.').to_string())
                    .collect(),
            };
            let mut info = KindInfo::new(
                &spec.group,
                &v.name,
                &names.kind,
                &names.plural,
                &singular,
                spec.scope == "Namespaced",
                Behavior::Custom(Arc::new(custom)),
            );
            info.list_kind = names
                .list_kind
                .clone()
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| format!("{}List", names.kind));
            info.short_names = names.short_names.clone().unwrap_or_default();
            info.categories = names.categories.clone().unwrap_or_default();
            let mut subs = Vec::new();
            if subresources.is_some_and(|s| s.status.is_some()) {
                subs.push("status".to_string());
            }
            if subresources.is_some_and(|s| s.scale.is_some()) {
                subs.push("scale".to_string());
            }
            info.subresources = subs;
            info.storage_prefix = format!("{}/{}", spec.group, names.plural);
            info.storage_version = format!("{}/{}", spec.group, storage);
            if v.deprecated == Some(true) {
                info.deprecation_warning = Some(v.deprecation_warning.clone().unwrap_or_else(|| {
                    let mut w = format!("{}/{} {} is deprecated", spec.group, v.name, names.kind);
                    let mut newer: Vec<&str> = served.clone();
                    newer.sort_by(|a, b| crate::kinds::compare_versions(a, b));
                    if let Some(n) = newer.first()
                        && crate::kinds::compare_versions(n, &v.name) == std::cmp::Ordering::Less
                    {
                        w.push_str(&format!("; use {}/{n} {}", spec.group, names.kind));
                    }
                    w
                }));
            }
            Arc::new(info)
        })
        .collect()
}

/// Registers the custom kinds of the CustomResourceDefinitions among
/// `manifests`; problems with a definition are returned as diagnostics (and
/// its kinds are not registered).
pub fn register_from_manifests(
    manifests: &[crate::decode::Manifest],
    registry: &Registry,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for m in manifests {
        if m.object.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            continue;
        }
        let api_version = m
            .object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Ok(info) = crate::kinds::lookup(api_version, "CustomResourceDefinition") else {
            continue;
        };
        // the definition is validated with the rest; only a valid one defines
        // kinds — checked after defaulting, as the API server checks it (a
        // CRD without `names.listKind` gets `<Kind>List`)
        let mut obj = m.object.clone();
        crate::check::strip_nulls(&mut obj);
        let defaulted = match info.apply_defaults(obj) {
            Ok(d) => d,
            Err(_) => continue,
        };
        if !crate::check::validate_object(info, &defaulted).is_empty() {
            continue;
        }
        match crate::kinds::decode_typed::<CustomResourceDefinition>(&defaulted) {
            Ok(crd) => {
                let name = crd.metadata.name.clone().unwrap_or_default();
                registry.set_custom(&name, kinds_of(&crd));
            }
            Err(e) => out.push(Diagnostic {
                file: m.file.to_string(),
                line: m.line(),
                column: 1,
                document: Some(m.document),
                object: crate::check::describe(&m.object),
                path: (!e.path.is_root()).then(|| e.path.to_string()),
                class: Class::Invalid,
                message: e.message,
            }),
        }
    }
    out
}
