//! The options of each verb as kube-apiserver reads them from the query:
//! checked as apimachinery's `Validate{List,Create,Update,Patch,Delete}Options`
//! check them, so a bad parameter gets kube's 422 naming
//! `ListOptions.meta.k8s.io` (etc.) and the field. Decoding single
//! parameters (booleans, integers) is [`Query`]'s job.

use schemas::{FieldError, FieldPath, Reason};

use crate::errors::{ApiError, ApiResult};
use crate::http::request::Query;

/// A write's options kind, as named in kube-apiserver's errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// POST: `CreateOptions`.
    Create,
    /// PUT: `UpdateOptions`.
    Update,
    /// PATCH: `PatchOptions`; `apply` for server-side apply.
    Patch {
        /// An `application/apply-patch+yaml` body.
        apply: bool,
    },
}

fn path(name: &str) -> FieldPath {
    FieldPath::fields(name)
}

fn fail(kind: &str, errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_options(kind, &errors))
    }
}

/// Checks `dryRun`, `fieldManager`, `fieldValidation` (and for patches
/// `force`) of a write.
pub fn check_write(query: &Query, write: Write) -> ApiResult<()> {
    let mut errors = Vec::new();
    let manager = query.get("fieldManager").unwrap_or("");
    let kind = match write {
        Write::Create => "CreateOptions",
        Write::Update => "UpdateOptions",
        Write::Patch { apply } => {
            if !apply && query.get("force").is_some() {
                errors.push(FieldError::forbidden(
                    path("force"),
                    "may not be specified for non-apply patch",
                ));
            }
            if apply && manager.is_empty() {
                errors.push(FieldError::required(
                    path("fieldManager"),
                    "is required for apply patch",
                ));
            }
            "PatchOptions"
        }
    };
    errors.extend(field_manager_errors(manager));
    errors.extend(dry_run_errors(&query.all("dryRun")));
    if let Some(v) = query.get("fieldValidation")
        && !matches!(v, "" | "Ignore" | "Strict" | "Warn")
    {
        errors.push(FieldError::not_supported(
            path("fieldValidation"),
            v,
            &["", "Ignore", "Strict", "Warn"],
        ));
    }
    fail(kind, errors)
}

/// apimachinery's `ValidateFieldManager`: at most 128 bytes, printable.
fn field_manager_errors(manager: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if manager.len() > 128 {
        errors.push(FieldError::too_long(path("fieldManager"), 128));
    }
    for (i, c) in manager.char_indices() {
        if c.is_control() {
            errors.push(FieldError::invalid(
                path("fieldManager"),
                manager,
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errors
}

/// `dryRun` may only be `All` (every value of the repeated parameter).
fn dry_run_errors(values: &[&str]) -> Vec<FieldError> {
    if values.iter().all(|v| *v == "All") {
        return Vec::new();
    }
    // Go prints the offending []string with %#v
    let shown = values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![FieldError {
        path: path("dryRun"),
        reason: Reason::NotSupported,
        message: format!("Unsupported value: []string{{{shown}}}: supported values: \"All\""),
    }]
}

/// Whether the checked write is a dry run.
pub fn dry_run(query: &Query) -> bool {
    !query.all("dryRun").is_empty()
}

/// Checks the options of a list or watch (`watch` says which);
/// `watch_list` is the WatchList feature gate.
pub fn check_list(query: &Query, watch: bool, watch_list: bool) -> ApiResult<()> {
    let mut errors = Vec::new();
    let rv_match = query.get("resourceVersionMatch").unwrap_or("");
    let has_continue = !query.get("continue").unwrap_or("").is_empty();
    let initial_events = query.bool("sendInitialEvents");
    let match_path = || path("resourceVersionMatch");
    if watch {
        if initial_events.is_some() && rv_match != "NotOlderThan" {
            errors.push(FieldError::forbidden(
                match_path(),
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if initial_events.is_some() && !watch_list {
            errors.push(FieldError::forbidden(
                path("sendInitialEvents"),
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        }
        if !rv_match.is_empty() {
            if initial_events.is_none() {
                errors.push(FieldError::forbidden(
                    match_path(),
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if rv_match != "NotOlderThan" {
                errors.push(FieldError::not_supported(
                    match_path(),
                    rv_match,
                    &["NotOlderThan"],
                ));
            }
            if has_continue {
                errors.push(FieldError::forbidden(
                    match_path(),
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        let rv = query.get("resourceVersion").unwrap_or("");
        if !rv_match.is_empty() {
            if rv.is_empty() {
                errors.push(FieldError::forbidden(
                    match_path(),
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if has_continue {
                errors.push(FieldError::forbidden(
                    match_path(),
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if rv_match != "Exact" && rv_match != "NotOlderThan" {
                errors.push(FieldError::not_supported(
                    match_path(),
                    rv_match,
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if rv_match == "Exact" && rv == "0" {
                errors.push(FieldError::forbidden(
                    match_path(),
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if initial_events.is_some() {
            errors.push(FieldError::forbidden(
                path("sendInitialEvents"),
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    fail("ListOptions", errors)
}

/// `sendInitialEvents` of a watch as kube-apiserver sees it: the parameter,
/// or with the WatchList gate on, `true` for a watch from no version or "0"
/// without `resourceVersionMatch` (apimachinery's `SetListOptionsDefaults`).
pub fn initial_events(query: &Query, watch_list: bool) -> Option<bool> {
    let explicit = query.bool("sendInitialEvents");
    if explicit.is_some() || !watch_list {
        return explicit;
    }
    let rv = query.get("resourceVersion").unwrap_or("");
    let legacy = rv.is_empty() || rv == "0";
    (legacy && query.get("resourceVersionMatch").unwrap_or("").is_empty()).then_some(true)
}

/// `includeObject` of a Table request (`Metadata`, `Object`, `None` or empty);
/// kube-apiserver answers anything else with a 400.
pub fn check_table(query: &Query) -> ApiResult<()> {
    match query.get("includeObject") {
        None | Some("" | "Metadata" | "Object" | "None") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "Unable to convert to Table as requested: includeObject: Invalid value: {other:?}: must be 'Metadata', 'Object', 'None', or empty"
        ))),
    }
}

/// Checks `propagationPolicy` and `orphanDependents` of a delete.
pub fn check_delete(
    propagation: Option<&str>,
    orphan_dependents: Option<bool>,
    dry_run: &[String],
) -> ApiResult<()> {
    let mut errors = Vec::new();
    if let Some(p) = propagation {
        if orphan_dependents.is_some() {
            errors.push(FieldError::invalid(
                path("propagationPolicy"),
                p,
                "orphanDependents and deletionPropagation cannot be both set",
            ));
        }
        if !matches!(p, "Foreground" | "Background" | "Orphan") {
            errors.push(FieldError::not_supported(
                path("propagationPolicy"),
                p,
                &["Foreground", "Background", "Orphan", "nil"],
            ));
        }
    }
    let dry: Vec<&str> = dry_run.iter().map(String::as_str).collect();
    errors.extend(dry_run_errors(&dry));
    fail("DeleteOptions", errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    fn message(r: ApiResult<()>) -> String {
        match r {
            Ok(()) => "ok".into(),
            Err(e) => format!("{} {}", e.code, e.message),
        }
    }

    /// Each row: a query, whether it is a watch, and kube-apiserver 1.33's answer.
    #[test]
    fn list_and_watch_options_answer_as_kube_apiserver() {
        let rows: &[(&str, bool, &str)] = &[
            ("", false, "ok"),
            ("resourceVersion=10&resourceVersionMatch=Exact", false, "ok"),
            (
                "resourceVersion=10&resourceVersionMatch=NotOlderThan",
                false,
                "ok",
            ),
            (
                "resourceVersionMatch=Exact",
                false,
                "422 ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ),
            (
                "resourceVersion=1&resourceVersionMatch=Latest",
                false,
                "422 ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Latest\": supported values: \"Exact\", \"NotOlderThan\", \"\"",
            ),
            (
                "resourceVersion=0&resourceVersionMatch=Exact",
                false,
                "422 ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ),
            (
                "resourceVersion=5&resourceVersionMatch=Exact&continue=abc",
                false,
                "422 ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided",
            ),
            (
                "sendInitialEvents=true",
                false,
                "422 ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list",
            ),
            (
                "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
                true,
                "ok",
            ),
            (
                "sendInitialEvents=false&resourceVersionMatch=NotOlderThan",
                true,
                "ok",
            ),
            (
                "sendInitialEvents=true",
                true,
                "422 ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ),
            (
                "resourceVersionMatch=NotOlderThan",
                true,
                "422 ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ),
            (
                "sendInitialEvents=1&resourceVersionMatch=Exact",
                true,
                "422 ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan, resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\"]",
            ),
        ];
        for (query, watch, want) in rows {
            assert_eq!(
                message(check_list(&q(query), *watch, true)),
                *want,
                "{query} watch={watch}"
            );
        }
        // Kubernetes 1.33 ships with the WatchList gate off
        assert_eq!(
            message(check_list(
                &q("sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
                true,
                false
            )),
            "422 ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"
        );
        assert_eq!(
            message(check_list(&q("resourceVersion=0"), true, false)),
            "ok"
        );
    }

    #[test]
    fn write_options_answer_as_kube_apiserver() {
        let rows: &[(&str, Write, &str)] = &[
            (
                "dryRun=All&fieldManager=me&fieldValidation=Strict",
                Write::Create,
                "ok",
            ),
            (
                "dryRun=Yes",
                Write::Create,
                "422 CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Yes\"}: supported values: \"All\"",
            ),
            (
                "dryRun=All&dryRun=x",
                Write::Update,
                "422 UpdateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"All\", \"x\"}: supported values: \"All\"",
            ),
            (
                "fieldValidation=strict",
                Write::Create,
                "422 CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
            ),
            (
                "force=true",
                Write::Patch { apply: false },
                "422 PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
            ),
            (
                "force=false",
                Write::Patch { apply: false },
                "422 PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
            ),
            (
                "",
                Write::Patch { apply: true },
                "422 PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ),
            (
                "fieldManager=me&force=true",
                Write::Patch { apply: true },
                "ok",
            ),
        ];
        for (query, write, want) in rows {
            assert_eq!(message(check_write(&q(query), *write)), *want, "{query}");
        }
        let long = format!("fieldManager={}", "m".repeat(129));
        assert_eq!(
            message(check_write(&q(&long), Write::Create)),
            "422 CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes"
        );
    }

    #[test]
    fn delete_options_answer_as_kube_apiserver() {
        assert_eq!(message(check_delete(Some("Orphan"), None, &[])), "ok");
        assert_eq!(
            message(check_delete(Some("orphan"), None, &[])),
            "422 DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"orphan\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        );
        assert_eq!(
            message(check_delete(Some("Orphan"), Some(true), &[])),
            "422 DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: \"Orphan\": orphanDependents and deletionPropagation cannot be both set"
        );
        assert_eq!(
            message(check_delete(None, None, &["Some".into()])),
            "422 DeleteOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Some\"}: supported values: \"All\""
        );
    }

    #[test]
    fn watches_default_to_initial_events_only_with_the_gate() {
        assert_eq!(initial_events(&q("watch=1"), false), None);
        assert_eq!(initial_events(&q("watch=1"), true), Some(true));
        assert_eq!(
            initial_events(&q("watch=1&resourceVersion=0"), true),
            Some(true)
        );
        assert_eq!(initial_events(&q("watch=1&resourceVersion=5"), true), None);
        assert_eq!(
            initial_events(&q("watch=1&sendInitialEvents=false"), true),
            Some(false)
        );
    }

    #[test]
    fn table_include_object_is_checked() {
        assert_eq!(message(check_table(&q("includeObject=Object"))), "ok");
        assert_eq!(
            message(check_table(&q("includeObject=all"))),
            "400 Unable to convert to Table as requested: includeObject: Invalid value: \"all\": must be 'Metadata', 'Object', 'None', or empty"
        );
    }
}
