//! Which names a CustomResourceDefinition may take: kube-apiserver's naming
//! controller. A name another definition of the same group has accepted is
//! in use; the rest are accepted one by one.

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionNames,
};

/// The names a definition is granted and, when some are refused, the
/// condition reason and message saying why.
#[derive(Clone, Debug, PartialEq)]
pub struct NamesVerdict {
    /// What goes to `status.acceptedNames`.
    pub accepted: CustomResourceDefinitionNames,
    /// `(reason, message)` of a refusal; `None` when every name is accepted.
    pub conflict: Option<(String, String)>,
}

fn in_use(name: &str) -> String {
    format!("{name:?} is already in use")
}

/// Decides `crd`'s names against the other definitions of its group.
pub fn accept_names(
    crd: &CustomResourceDefinition,
    others: &[&CustomResourceDefinition],
) -> NamesVerdict {
    let group = &crd.spec.group;
    let mut resources = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for other in others
        .iter()
        .filter(|o| o.spec.group == *group && o.metadata.name != crd.metadata.name)
    {
        let Some(names) = other
            .status
            .as_ref()
            .and_then(|s| s.accepted_names.as_ref())
        else {
            continue;
        };
        resources.insert(names.plural.clone());
        resources.extend(names.singular.clone());
        resources.extend(names.short_names.iter().flatten().cloned());
        kinds.insert(names.kind.clone());
        kinds.extend(names.list_kind.clone());
    }
    resources.remove("");
    kinds.remove("");

    let requested = &crd.spec.names;
    let old = crd
        .status
        .as_ref()
        .and_then(|s| s.accepted_names.clone())
        .unwrap_or_default();
    let mut accepted = old.clone();
    let mut conflict = None;
    let mut refuse = |reason: &str, message: String| {
        conflict = Some((reason.to_string(), message));
    };

    if resources.contains(&requested.plural) && requested.plural != old.plural {
        refuse("PluralConflict", in_use(&requested.plural));
    } else {
        accepted.plural = requested.plural.clone();
    }
    match requested.singular.as_deref() {
        Some(s) if resources.contains(s) && Some(s) != old.singular.as_deref() => {
            refuse("SingularConflict", in_use(s));
        }
        _ => accepted.singular = requested.singular.clone(),
    }
    let old_short: BTreeSet<&String> = old.short_names.iter().flatten().collect();
    let short_errors: Vec<String> = requested
        .short_names
        .iter()
        .flatten()
        .filter(|s| resources.contains(*s) && !old_short.contains(s))
        .map(|s| in_use(s))
        .collect();
    match short_errors.len() {
        0 => accepted.short_names = requested.short_names.clone(),
        1 => refuse("ShortNamesConflict", short_errors[0].clone()),
        _ => refuse(
            "ShortNamesConflict",
            format!("[{}]", short_errors.join(", ")),
        ),
    }
    if kinds.contains(&requested.kind) && requested.kind != old.kind {
        refuse("KindConflict", in_use(&requested.kind));
    } else {
        accepted.kind = requested.kind.clone();
    }
    match requested.list_kind.as_deref() {
        Some(l) if kinds.contains(l) && Some(l) != old.list_kind.as_deref() => {
            refuse("ListKindConflict", in_use(l));
        }
        _ => accepted.list_kind = requested.list_kind.clone(),
    }
    accepted.categories = requested.categories.clone();
    NamesVerdict { accepted, conflict }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(
        name: &str,
        plural: &str,
        kind: &str,
        short: &[&str],
        accepted: bool,
    ) -> CustomResourceDefinition {
        let group = name.split_once('.').map_or("", |(_, g)| g);
        let names = json!({"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind,
            "listKind": format!("{kind}List"), "shortNames": short});
        let mut v = json!({"metadata": {"name": name}, "spec": {"group": group, "scope": "Namespaced",
            "names": names, "versions": []}});
        if accepted {
            v["status"] = json!({"acceptedNames": names, "storedVersions": []});
        }
        serde_json::from_value(v).expect("crd")
    }

    #[test]
    fn free_names_are_all_accepted() {
        let a = crd(
            "orders.shop.example.com",
            "orders",
            "Order",
            &["ord"],
            false,
        );
        let b = crd("carts.shop.example.com", "carts", "Cart", &["ct"], true);
        let v = accept_names(&a, &[&b]);
        assert_eq!(v.conflict, None);
        assert_eq!(v.accepted.plural, "orders");
        assert_eq!(v.accepted.kind, "Order");
        assert_eq!(v.accepted.short_names, Some(vec!["ord".to_string()]));
    }

    #[test]
    fn names_taken_in_the_group_are_refused_one_by_one() {
        let taken = crd("orders.shop.example.com", "orders", "Order", &["o"], true);
        let rival = crd(
            "orders2.shop.example.com",
            "orders",
            "Order2",
            &["o", "x"],
            false,
        );
        let v = accept_names(&rival, &[&taken]);
        // the later checks overwrite the reason, as kube-apiserver's do
        assert_eq!(
            v.conflict,
            Some((
                "ShortNamesConflict".into(),
                "\"o\" is already in use".into()
            ))
        );
        assert_eq!(v.accepted.plural, "", "the plural stays unaccepted");
        assert_eq!(v.accepted.kind, "Order2", "a free kind is accepted");
        let other_group = crd(
            "orders.billing.example.com",
            "orders",
            "Order",
            &["o"],
            false,
        );
        assert_eq!(accept_names(&other_group, &[&taken]).conflict, None);
    }
}
