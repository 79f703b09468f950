//! Post-build variable substitution, as Flux's kustomize-controller does
//! it (`spec.postBuild`): variables from `substituteFrom` ConfigMaps and
//! Secrets (later ones override earlier ones) and `substitute` (which
//! overrides them all); in every object not annotated or labelled
//! `kustomize.toolkit.fluxcd.io/substitute: disabled`, `${var}` becomes
//! its value, `${var:=default}` (or `:-`) its value or the default when
//! unset or empty, `${var=default}` (or `-`) the default only when unset,
//! `$${var}` the literal `${var}`; an undefined variable becomes empty;
//! `$var` (no braces) is left alone.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::Value;

use reconcilers::runtime::Client;
use schemas::korral::PostBuild;
use schemas::validation::is_variable_name;

use crate::source::SourceFile;

/// The annotation (or label) that turns substitution off for one object.
pub const DISABLE_KEY: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// Replaces the variable expressions in `text` with values from `vars`.
pub fn envsubst(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(escaped) = after.strip_prefix("$${") {
            // the escape: `$${var}` is written `${var}`, unsubstituted
            out.push_str("${");
            rest = escaped;
            continue;
        }
        if let Some(body) = after.strip_prefix("${")
            && let Some(end) = body.find('}')
            && let Some(value) = expand(&body[..end], vars)
        {
            out.push_str(&value);
            rest = &body[end + 1..];
            continue;
        }
        out.push('$');
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

/// The value of one `${…}` body, `None` when it is no variable expression.
fn expand(body: &str, vars: &BTreeMap<String, String>) -> Option<String> {
    let name_end = body
        .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .unwrap_or(body.len());
    let (name, op) = body.split_at(name_end);
    if !is_variable_name(name) {
        return None;
    }
    let value = vars.get(name);
    let or_empty = |d: &str| match value {
        Some(v) if !v.is_empty() => v.clone(),
        _ => d.to_string(),
    };
    let or_unset = |d: &str| value.cloned().unwrap_or_else(|| d.to_string());
    if op.is_empty() {
        Some(value.cloned().unwrap_or_default())
    } else if let Some(d) = op.strip_prefix(":=").or_else(|| op.strip_prefix(":-")) {
        Some(or_empty(d))
    } else {
        op.strip_prefix('=')
            .or_else(|| op.strip_prefix('-'))
            .map(or_unset)
    }
}

/// Whether an object asks to be left alone.
fn disabled(object: &Value) -> bool {
    ["annotations", "labels"].iter().any(|m| {
        object["metadata"][m][DISABLE_KEY]
            .as_str()
            .is_some_and(|v| v == "disabled")
    })
}

/// The documents of a YAML stream, separators kept with the document after them.
fn documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if offset > start && (bare == "---" || bare.starts_with("--- ")) {
            docs.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs
}

/// Substitutes `vars` in every document of every file (lines keep their
/// numbers unless a value spans lines); objects that disable it are left
/// as written.
pub fn substitute_files(files: &mut [SourceFile], vars: &BTreeMap<String, String>) {
    for f in files.iter_mut() {
        let Ok(text) = std::str::from_utf8(&f.data) else {
            continue;
        };
        if !text.contains("${") {
            continue;
        }
        let mut out = String::with_capacity(text.len());
        for doc in documents(text) {
            let skip = serde_saphyr::from_str::<Value>(doc.trim_start_matches("---"))
                .map(|v| disabled(&v))
                .unwrap_or(false);
            if skip {
                out.push_str(doc);
            } else {
                out.push_str(&envsubst(doc, vars));
            }
        }
        f.data = out.into_bytes();
    }
}

/// The variables `post_build` defines, read from the ConfigMaps and
/// Secrets it names in `namespace`; a missing object that is not
/// `optional` is an error.
pub async fn variables(
    client: &Client,
    namespace: &str,
    post_build: &PostBuild,
) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for r in post_build.substitute_from.iter().flatten() {
        let optional = r.optional.unwrap_or(false);
        let found: Option<BTreeMap<String, String>> = match r.kind.as_str() {
            "ConfigMap" => client
                .api::<ConfigMap>(Some(namespace))
                .get_opt(&r.name)
                .await
                .map_err(|e| format!("reading ConfigMap {namespace}/{}: {e}", r.name))?
                .map(|c| c.data.unwrap_or_default().into_iter().collect()),
            "Secret" => client
                .api::<Secret>(Some(namespace))
                .get_opt(&r.name)
                .await
                .map_err(|e| format!("reading Secret {namespace}/{}: {e}", r.name))?
                .map(|s| {
                    let mut m: BTreeMap<String, String> = s
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    m.extend(s.string_data.unwrap_or_default());
                    m
                }),
            other => {
                return Err(format!(
                    "substituteFrom kind {other:?} is neither ConfigMap nor Secret"
                ));
            }
        };
        match found {
            Some(data) => {
                for (k, v) in data {
                    if !is_variable_name(&k) {
                        return Err(format!(
                            "{} {namespace}/{}: key {k:?} is not a valid variable name",
                            r.kind, r.name
                        ));
                    }
                    vars.insert(k, v);
                }
            }
            None if optional => {
                tracing::debug!(kind = %r.kind, name = %r.name, "optional substituteFrom object missing");
            }
            None => {
                return Err(format!(
                    "substituteFrom: {} {namespace}/{} not found (set optional: true to allow that)",
                    r.kind, r.name
                ));
            }
        }
    }
    vars.extend(post_build.substitute.clone().unwrap_or_default());
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expressions_defaults_escapes_and_undefined_variables() {
        let v = vars(&[("app", "web"), ("empty", ""), ("n", "3")]);
        assert_eq!(envsubst("name: ${app}-svc", &v), "name: web-svc");
        assert_eq!(envsubst("r: ${n:=1} ${missing:=1}", &v), "r: 3 1");
        assert_eq!(envsubst("${empty:=x}|${empty=x}|${missing=x}", &v), "x||x");
        assert_eq!(envsubst("${empty:-y}|${missing-y}", &v), "y|y");
        assert_eq!(envsubst("u: '${missing}'", &v), "u: ''");
        assert_eq!(
            envsubst("keep: $${app} and $app and $", &v),
            "keep: ${app} and $app and $"
        );
        assert_eq!(envsubst("${1bad} ${a b} ${", &v), "${1bad} ${a b} ${");
        assert_eq!(envsubst("port: ${n:=80}0", &v), "port: 30");
    }

    #[test]
    fn objects_that_disable_substitution_are_left_alone() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata: {x: \"${app}\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata: {x: \"${app}\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {kustomize.toolkit.fluxcd.io/substitute: disabled}\ndata: {x: \"${app}\"}\n";
        let mut files = vec![SourceFile {
            path: "cm.yaml".into(),
            data: text.as_bytes().to_vec(),
        }];
        substitute_files(&mut files, &vars(&[("app", "web")]));
        let out = String::from_utf8(files[0].data.clone()).expect("utf8");
        assert_eq!(out.matches("x: \"web\"").count(), 1, "{out}");
        assert_eq!(out.matches("x: \"${app}\"").count(), 2, "{out}");
        assert_eq!(out.lines().count(), text.lines().count());
    }
}
