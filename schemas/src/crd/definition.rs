//! Validation of a CustomResourceDefinition itself, with kube-apiserver's
//! messages: its name, group, scope, names, versions, schemas (structural
//! rules, list types, printer columns, scale paths) and CEL rules.

use std::collections::HashSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::validation::{Errs, NameRule, check_immutable, names, validate_meta};

fn dns1035(errs: &mut Errs, p: FieldPath, v: &str) {
    errs.check(p, v, names::dns1035_label(v));
}

fn mixed_case(errs: &mut Errs, p: FieldPath, v: &str) {
    if let Some(e) = names::dns1035_label(&v.to_ascii_lowercase()) {
        errs.push(FieldError::invalid(
            p,
            v,
            format!("may have mixed case, but should otherwise match: {e}"),
        ));
    }
}

fn is_true(s: &Value, key: &str) -> bool {
    s.get(key) == Some(&Value::Bool(true))
}

/// Structural-schema and OpenAPI restrictions on one schema node.
fn structural(errs: &mut Errs, s: &Value, p: &FieldPath, level: Level) {
    let Some(obj) = s.as_object() else { return };
    let typ = obj.get("type").and_then(Value::as_str);
    let int_or_string = is_true(s, "x-kubernetes-int-or-string");
    let preserve = is_true(s, "x-kubernetes-preserve-unknown-fields");
    if typ.is_none_or(str::is_empty) && !int_or_string && !preserve && level != Level::Junctor {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            _ => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(p.key("type"), detail));
    }
    if let Some(t) = typ {
        if !["array", "boolean", "integer", "number", "object", "string"].contains(&t) {
            if t == "null" {
                errs.push(FieldError::forbidden(
                    p.key("type"),
                    "type cannot be set to null, use nullable as an alternative",
                ));
            } else {
                errs.push(FieldError::not_supported(
                    p.key("type"),
                    t,
                    &["array", "boolean", "integer", "number", "object", "string"],
                ));
            }
        }
        if level == Level::Root && t != "object" {
            errs.push(FieldError::invalid(
                p.key("type"),
                t,
                "must be object at the root",
            ));
        }
        if t == "array" && !obj.contains_key("items") {
            errs.push(FieldError::required(p.key("items"), "must be specified"));
        }
    }
    if is_true(s, "uniqueItems") {
        errs.push(FieldError::forbidden(
            p.key("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if obj.contains_key("properties")
        && obj
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(true))
    {
        errs.push(FieldError::forbidden(
            p.key("additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if level == Level::Root && obj.contains_key("additionalProperties") {
        errs.push(FieldError::forbidden(
            p.key("additionalProperties"),
            "must not be used at the root",
        ));
    }
    for (key, what) in [
        ("$ref", "$ref is not supported"),
        ("id", "id is not supported"),
    ] {
        if obj.contains_key(key) {
            errs.push(FieldError::forbidden(p.key(key), what));
        }
    }
    for key in [
        "additionalItems",
        "patternProperties",
        "definitions",
        "dependencies",
    ] {
        if obj.contains_key(key) {
            errs.push(FieldError::forbidden(
                p.key(key),
                format!("{key} is not supported"),
            ));
        }
    }
    if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(FieldError::invalid(
            p.key("x-kubernetes-preserve-unknown-fields"),
            false,
            "must be true or undefined",
        ));
    }
    if level == Level::Root && is_true(s, "nullable") {
        errs.push(FieldError::forbidden(
            p.key("nullable"),
            "nullable cannot be true at the root",
        ));
    }
    if let Some(pat) = obj.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::Regex::new(pat)
    {
        errs.push(FieldError::invalid(
            p.key("pattern"),
            pat,
            format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
    match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
        None => {
            if obj
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .is_some_and(|k| !k.is_empty())
            {
                errs.push(FieldError::invalid(
                    p.key("x-kubernetes-list-type"),
                    "",
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                ));
            }
        }
        Some(lt) => {
            if typ != Some("array") {
                errs.push(FieldError::invalid(
                    p.key("type"),
                    typ.unwrap_or(""),
                    "must be array if x-kubernetes-list-type is specified",
                ));
            }
            match lt {
                "atomic" | "set" => {}
                "map" => {
                    let keys: Vec<&str> = obj
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if keys.is_empty() {
                        errs.push(FieldError::required(
                            p.key("x-kubernetes-list-map-keys"),
                            "must not be empty if x-kubernetes-list-type is map",
                        ));
                    }
                    let items = obj.get("items");
                    if items.and_then(|i| i.get("type")).and_then(Value::as_str) != Some("object") {
                        errs.push(FieldError::invalid(
                            p.key("items").key("type"),
                            items
                                .and_then(|i| i.get("type"))
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                            "must be object if parent array's x-kubernetes-list-type is map",
                        ));
                    } else if let Some(props) = items
                        .and_then(|i| i.get("properties"))
                        .and_then(Value::as_object)
                    {
                        for k in &keys {
                            if !props.contains_key(*k) {
                                errs.push(FieldError::invalid(
                                    p.key("x-kubernetes-list-map-keys"),
                                    format!("{keys:?}"),
                                    "entries must all be names of item properties",
                                ));
                            }
                        }
                    }
                }
                other => errs.push(FieldError::not_supported(
                    p.key("x-kubernetes-list-type"),
                    other,
                    &["atomic", "set", "map"],
                )),
            }
        }
    }
    if is_true(s, "x-kubernetes-embedded-resource") && typ != Some("object") {
        errs.push(FieldError::invalid(
            p.key("type"),
            typ.unwrap_or(""),
            "must be object if x-kubernetes-embedded-resource is true",
        ));
    }
    if level == Level::Root
        && let Some(meta) = obj
            .get("properties")
            .and_then(|props| props.get("metadata"))
    {
        let extra = meta
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, v)| match k.as_str() {
                "type" => v != "object",
                "properties" => v
                    .as_object()
                    .is_some_and(|m| m.keys().any(|k| k != "name" && k != "generateName")),
                _ => true,
            });
        if extra {
            errs.push(FieldError::forbidden(
                p.key("properties").map_key("metadata"),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            let cp = p.key("properties").map_key(k.clone());
            if level == Level::Root && k == "metadata" {
                continue;
            }
            if level == Level::Root
                && matches!(k.as_str(), "apiVersion" | "kind")
                && child.get("type").and_then(Value::as_str) != Some("string")
            {
                errs.push(FieldError::invalid(cp.key("type"), "", "must be string"));
            }
            if level == Level::Root
                && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                && child.get("default").is_some()
            {
                errs.push(FieldError::forbidden(
                    cp.key("default"),
                    format!("must not be set in top-level {k}"),
                ));
            }
            structural(errs, child, &cp, Level::Field);
        }
    }
    if let Some(items) = obj.get("items") {
        if items.is_array() {
            errs.push(FieldError::forbidden(
                p.key("items"),
                "items must be a schema object and not an array",
            ));
        } else {
            structural(errs, items, &p.key("items"), Level::Item);
        }
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|a| a.is_object()) {
        structural(errs, ap, &p.key("additionalProperties"), Level::Field);
    }
    let skip_any_of = is_int_or_string_any_of(obj.get("anyOf"));
    for key in ["allOf", "anyOf", "oneOf"] {
        if key == "anyOf" && skip_any_of {
            continue;
        }
        for (i, j) in obj
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if key == "allOf" && is_int_or_string_any_of(j.get("anyOf")) {
                continue;
            }
            junctor(errs, j, &p.key(key).index(i));
        }
    }
    if let Some(n) = obj.get("not") {
        junctor(errs, n, &p.key("not"));
    }
}

/// The one `anyOf` with types a structural schema may have: kube's
/// int-or-string pattern `anyOf: [{type: integer}, {type: string}]`
/// (controller-gen writes it for every `IntOrString` field).
fn is_int_or_string_any_of(any_of: Option<&Value>) -> bool {
    let Some(Value::Array(alts)) = any_of else {
        return false;
    };
    let types: Vec<Option<&str>> = alts
        .iter()
        .map(|a| a.get("type").and_then(Value::as_str))
        .collect();
    alts.len() == 2
        && types == [Some("integer"), Some("string")]
        && alts
            .iter()
            .all(|a| a.as_object().is_some_and(|m| m.len() == 1))
}

/// Inside `allOf`/`anyOf`/`oneOf`/`not`: value validation only.
fn junctor(errs: &mut Errs, s: &Value, p: &FieldPath) {
    for (key, detail) in [
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        (
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
        ("nullable", "must be false to be structural"),
        (
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
    ] {
        if s.get(key).is_some_and(|v| v != &Value::Bool(false)) {
            errs.push(FieldError::forbidden(p.key(key), detail));
        }
    }
    structural(errs, s, p, Level::Junctor);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
    Junctor,
}

/// Validates a CustomResourceDefinition as kube-apiserver does on create.
pub fn validate_definition(crd: &CustomResourceDefinition) -> Vec<FieldError> {
    let mut errs = Errs::default();
    validate_meta(
        &mut errs,
        &crd.metadata,
        NameRule::Subdomain,
        &FieldPath::fields("metadata"),
    );
    let spec = &crd.spec;
    let sp = FieldPath::fields("spec");
    let name = crd.metadata.name.as_deref().unwrap_or("");
    if !name.is_empty() && name != format!("{}.{}", spec.names.plural, spec.group) {
        errs.push(FieldError::invalid(
            FieldPath::fields("metadata.name"),
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if spec.group.is_empty() {
        errs.push(FieldError::required(sp.key("group"), ""));
    } else if let Some(e) = names::dns1123_subdomain(&spec.group) {
        errs.push(FieldError::invalid(sp.key("group"), &spec.group, e));
    } else if !spec.group.contains('.') {
        errs.push(FieldError::invalid(
            sp.key("group"),
            &spec.group,
            "should be a domain with at least one dot",
        ));
    }
    if spec.scope.is_empty() {
        errs.push(FieldError::required(sp.key("scope"), ""));
    } else {
        errs.one_of(
            sp.key("scope"),
            Some(&spec.scope),
            &["Cluster", "Namespaced"],
        );
    }
    let np = sp.key("names");
    let n = &spec.names;
    for (field, v) in [
        ("plural", Some(&n.plural)),
        ("singular", n.singular.as_ref()),
    ] {
        match v.filter(|v| !v.is_empty()) {
            None => errs.push(FieldError::required(np.key(field), "")),
            Some(v) => dns1035(&mut errs, np.key(field), v),
        }
    }
    for (i, s) in n.short_names.iter().flatten().enumerate() {
        dns1035(&mut errs, np.key("shortNames").index(i), s);
    }
    for (i, c) in n.categories.iter().flatten().enumerate() {
        dns1035(&mut errs, np.key("categories").index(i), c);
    }
    if n.kind.is_empty() {
        errs.push(FieldError::required(np.key("kind"), ""));
    } else {
        mixed_case(&mut errs, np.key("kind"), &n.kind);
    }
    match n.list_kind.as_deref().filter(|l| !l.is_empty()) {
        None => errs.push(FieldError::required(np.key("listKind"), "")),
        Some(l) => {
            mixed_case(&mut errs, np.key("listKind"), l);
            if l == n.kind {
                errs.push(FieldError::invalid(
                    np.key("listKind"),
                    l,
                    "kind and listKind may not be the same",
                ));
            }
        }
    }
    let vp = sp.key("versions");
    let mut seen = HashSet::new();
    if spec.versions.iter().any(|v| !seen.insert(v.name.clone())) {
        errs.push(FieldError::invalid(
            vp.clone(),
            "versions",
            "must contain unique version names",
        ));
    }
    if spec.versions.iter().filter(|v| v.storage).count() != 1 {
        errs.push(FieldError::invalid(
            vp.clone(),
            "versions",
            "must have exactly one version marked as storage version",
        ));
    }
    if spec.preserve_unknown_fields == Some(true) {
        errs.push(FieldError::invalid(
            sp.key("preserveUnknownFields"),
            true,
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    if let Some(c) = &spec.conversion {
        errs.one_of(
            sp.key("conversion").key("strategy"),
            Some(&c.strategy),
            &["None", "Webhook"],
        );
        if c.strategy == "None" && c.webhook.is_some() {
            errs.push(FieldError::forbidden(
                sp.key("conversion").key("webhook"),
                "should not be set when strategy is not set to Webhook",
            ));
        }
    }
    for (i, v) in spec.versions.iter().enumerate() {
        let p = vp.index(i);
        dns1035(&mut errs, p.key("name"), &v.name);
        if v.deprecation_warning.is_some() && v.deprecated != Some(true) {
            errs.push(FieldError::invalid(
                p.key("deprecationWarning"),
                v.deprecation_warning.as_deref().unwrap_or(""),
                "can only be set for deprecated versions",
            ));
        }
        let schema = v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        let schema_path = p.key("schema").key("openAPIV3Schema");
        match schema.and_then(|s| serde_json::to_value(s).ok()) {
            None => errs.push(FieldError::required(schema_path, "schemas are required")),
            Some(s) => {
                structural(&mut errs, &s, &schema_path, Level::Root);
                if v.subresources
                    .as_ref()
                    .is_some_and(|sub| sub.status.is_some())
                    && s.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t != "object")
                {
                    errs.push(FieldError::invalid(
                        schema_path.key("type"),
                        s.get("type").and_then(Value::as_str).unwrap_or(""),
                        "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled",
                    ));
                }
            }
        }
        for (j, c) in v.additional_printer_columns.iter().flatten().enumerate() {
            let cp = p.key("additionalPrinterColumns").index(j);
            if c.name.is_empty() {
                errs.push(FieldError::required(cp.key("name"), ""));
            }
            if !["boolean", "date", "integer", "number", "string"].contains(&c.type_.as_str()) {
                errs.push(FieldError::not_supported(
                    cp.key("type"),
                    &c.type_,
                    &["boolean", "date", "integer", "number", "string"],
                ));
            }
            if let Some(f) = c.format.as_deref().filter(|f| !f.is_empty())
                && ![
                    "byte",
                    "date",
                    "date-time",
                    "double",
                    "float",
                    "int32",
                    "int64",
                    "password",
                ]
                .contains(&f)
            {
                errs.push(FieldError::not_supported(
                    cp.key("format"),
                    f,
                    &[
                        "byte",
                        "date",
                        "date-time",
                        "double",
                        "float",
                        "int32",
                        "int64",
                        "password",
                    ],
                ));
            }
            if c.json_path.is_empty() {
                errs.push(FieldError::required(
                    cp.key("JSONPath"),
                    "must not be empty",
                ));
            } else if !c.json_path.starts_with('.') {
                errs.push(FieldError::invalid(
                    cp.key("JSONPath"),
                    &c.json_path,
                    "must be a simple json path starting with .",
                ));
            }
        }
        if let Some(scale) = v.subresources.as_ref().and_then(|s| s.scale.as_ref()) {
            let sc = p.key("subresources").key("scale");
            if !scale.spec_replicas_path.starts_with(".spec.") {
                errs.push(FieldError::invalid(
                    sc.key("specReplicasPath"),
                    &scale.spec_replicas_path,
                    "should be a json path under .spec",
                ));
            }
            if !scale.status_replicas_path.starts_with(".status.") {
                errs.push(FieldError::invalid(
                    sc.key("statusReplicasPath"),
                    &scale.status_replicas_path,
                    "should be a json path under .status",
                ));
            }
            if let Some(l) = scale.label_selector_path.as_deref()
                && !l.starts_with(".spec.")
                && !l.starts_with(".status.")
            {
                errs.push(FieldError::invalid(
                    sc.key("labelSelectorPath"),
                    l,
                    "should be a json path under either .spec or .status",
                ));
            }
        }
    }
    // CEL rules compile (their errors carry the version's schema path)
    for (i, v) in spec.versions.iter().enumerate() {
        if let Some(s) = v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
        {
            let (_, rule_errors) = super::compile_rules(&s);
            let prefix = vp.index(i).key("schema");
            errs.0.extend(rule_errors.into_iter().map(|mut e| {
                e.path = prefix.join(&e.path);
                e
            }));
        }
    }
    errs.0
}

/// The update rules of a CustomResourceDefinition: the create rules, plus
/// `spec.group` and `spec.names.plural` immutable, and scope and kind once
/// established.
pub fn validate_definition_update(
    new: &CustomResourceDefinition,
    old: &CustomResourceDefinition,
) -> Vec<FieldError> {
    let mut errs = Errs::default();
    check_immutable(
        &mut errs,
        FieldPath::fields("spec.group"),
        &new.spec.group,
        &old.spec.group,
    );
    check_immutable(
        &mut errs,
        FieldPath::fields("spec.names.plural"),
        &new.spec.names.plural,
        &old.spec.names.plural,
    );
    let established = old
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    if established {
        check_immutable(
            &mut errs,
            FieldPath::fields("spec.scope"),
            &new.spec.scope,
            &old.spec.scope,
        );
        check_immutable(
            &mut errs,
            FieldPath::fields("spec.names.kind"),
            &new.spec.names.kind,
            &old.spec.names.kind,
        );
    }
    errs.0
}
