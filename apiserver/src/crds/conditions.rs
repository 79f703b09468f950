//! A CustomResourceDefinition's status conditions (`NamesAccepted`,
//! `Established`, `Terminating`), set the way apiextensions' `SetCRDCondition`
//! does: replaced by type, the transition time moving only when the status does.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionCondition,
};

/// `NamesAccepted`.
pub const NAMES_ACCEPTED: &str = "NamesAccepted";
/// `Established`.
pub const ESTABLISHED: &str = "Established";
/// `Terminating`.
pub const TERMINATING: &str = "Terminating";

/// Sets condition `type_` on `crd`'s status.
pub fn set(
    crd: &mut CustomResourceDefinition,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
) {
    let status_text = if status { "True" } else { "False" };
    let conditions = crd
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let new = CustomResourceDefinitionCondition {
        type_: type_.to_string(),
        status: status_text.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_transition_time: Some(schemas::time::now()),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let transition = if c.status == status_text {
                c.last_transition_time.clone()
            } else {
                new.last_transition_time.clone()
            };
            *c = CustomResourceDefinitionCondition {
                last_transition_time: transition,
                ..new
            };
        }
        None => conditions.push(new),
    }
}

/// Whether condition `type_` is `True`.
pub fn is_true(crd: &CustomResourceDefinition, type_: &str) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Whether `crd` has condition `type_` at all.
pub fn has(crd: &CustomResourceDefinition, type_: &str) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut crd = CustomResourceDefinition::default();
        set(
            &mut crd,
            ESTABLISHED,
            false,
            "NotAccepted",
            "not all names are accepted",
        );
        let conditions = |c: &CustomResourceDefinition| {
            c.status
                .clone()
                .and_then(|s| s.conditions)
                .unwrap_or_default()
        };
        let first = conditions(&crd)[0].last_transition_time.clone();
        let mut pinned = crd.clone();
        if let Some(c) = pinned.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c[0].last_transition_time = None;
        }
        set(
            &mut pinned,
            ESTABLISHED,
            false,
            "Installing",
            "the initial names have been accepted",
        );
        assert_eq!(
            conditions(&pinned)[0].last_transition_time,
            None,
            "same status keeps the time"
        );
        assert_eq!(conditions(&pinned)[0].reason.as_deref(), Some("Installing"));
        set(
            &mut pinned,
            ESTABLISHED,
            true,
            "InitialNamesAccepted",
            "the initial names have been accepted",
        );
        assert!(conditions(&pinned)[0].last_transition_time.is_some());
        assert!(is_true(&pinned, ESTABLISHED));
        assert!(first.is_some());
        assert_eq!(conditions(&pinned).len(), 1);
    }
}
