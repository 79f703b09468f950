//! GitSource `spec.dependsOn` (Flux's semantics): a source syncs only once
//! every source it depends on is Ready at its current generation; a source
//! on a dependency cycle is refused with the cycle named. Pure functions
//! over a lookup (the reconciler passes its cache) plus the status they set.

use std::collections::HashSet;

use reconcilers::runtime::ObjectRef;
use schemas::korral::{GitSource, GitSourceStatus};

use crate::status::set_condition;

/// Condition reason while a dependency is not Ready.
pub const NOT_READY: &str = "DependencyNotReady";
/// Condition reason of a source on a dependency cycle.
pub const CYCLE: &str = "DependencyCycle";

/// Why a source may not sync now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// The source is on a cycle: the sources along it, starting and ending
    /// with the source itself.
    Cycle(Vec<ObjectRef>),
    /// These dependencies are missing or not Ready (with why).
    NotReady(Vec<(ObjectRef, String)>),
}

impl Blocked {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Blocked::Cycle(_) => CYCLE,
            Blocked::NotReady(_) => NOT_READY,
        }
    }

    /// One line naming the cycle or the dependencies.
    pub fn message(&self) -> String {
        match self {
            Blocked::Cycle(path) => format!(
                "dependency cycle refused: {}",
                path.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            Blocked::NotReady(deps) => format!(
                "waiting for {}: {}",
                if deps.len() == 1 {
                    "a dependency"
                } else {
                    "dependencies"
                },
                deps.iter()
                    .map(|(r, why)| format!("GitSource {r} {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }
}

/// The sources `source` depends on, namespaces resolved.
pub fn dependencies(source: &GitSource) -> Vec<ObjectRef> {
    let own = source.metadata.namespace.as_deref().unwrap_or("default");
    source
        .spec
        .iter()
        .flat_map(|s| s.depends_on.iter().flatten())
        .filter(|d| !d.name.is_empty())
        .map(|d| {
            let ns = d.namespace.as_deref().filter(|n| !n.is_empty());
            ObjectRef::new(Some(ns.unwrap_or(own)), &d.name)
        })
        .collect()
}

/// Whether `source` depends on `on`.
pub fn depends_on(source: &GitSource, on: &ObjectRef) -> bool {
    dependencies(source).iter().any(|d| d == on)
}

/// Why `dep` is not Ready (Flux: Ready True at the current generation),
/// `None` when it is.
pub fn not_ready(dep: Option<&GitSource>) -> Option<String> {
    let Some(dep) = dep else {
        return Some("does not exist".into());
    };
    let status = dep.status.as_ref();
    let ready = status.and_then(crate::status::ready);
    match ready {
        Some(c) if c.status == "True" => {
            let observed = status.and_then(|s| s.observed_generation);
            if observed.is_some() && observed != dep.metadata.generation {
                Some("has not synced its current generation yet".into())
            } else {
                None
            }
        }
        Some(c) => Some(format!("is not Ready ({})", c.reason)),
        None => Some("has not synced yet".into()),
    }
}

/// A cycle through `start` in the graph `edges` describes, as the path
/// `start → … → start` (shortest first found depth-first, deterministic).
pub fn find_cycle(
    start: &ObjectRef,
    edges: &dyn Fn(&ObjectRef) -> Vec<ObjectRef>,
) -> Option<Vec<ObjectRef>> {
    fn walk(
        at: &ObjectRef,
        start: &ObjectRef,
        edges: &dyn Fn(&ObjectRef) -> Vec<ObjectRef>,
        path: &mut Vec<ObjectRef>,
        seen: &mut HashSet<ObjectRef>,
    ) -> bool {
        for next in edges(at) {
            if &next == start {
                path.push(next);
                return true;
            }
            if !seen.insert(next.clone()) {
                continue;
            }
            path.push(next.clone());
            if walk(&next, start, edges, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.clone()];
    let mut seen = HashSet::from([start.clone()]);
    walk(start, start, edges, &mut path, &mut seen).then_some(path)
}

/// Whether `source` must wait: on a cycle, or a dependency not Ready.
/// `lookup` finds other sources (the reconciler's cache).
pub fn check(
    source: &GitSource,
    lookup: &dyn Fn(&ObjectRef) -> Option<std::sync::Arc<GitSource>>,
) -> Option<Blocked> {
    let deps = dependencies(source);
    if deps.is_empty() {
        return None;
    }
    let me = ObjectRef::new(
        Some(source.metadata.namespace.as_deref().unwrap_or("default")),
        source.metadata.name.as_deref().unwrap_or(""),
    );
    let edges = |r: &ObjectRef| -> Vec<ObjectRef> {
        if r == &me {
            deps.clone()
        } else {
            lookup(r).map(|s| dependencies(&s)).unwrap_or_default()
        }
    };
    if let Some(cycle) = find_cycle(&me, &edges) {
        return Some(Blocked::Cycle(cycle));
    }
    let waiting: Vec<(ObjectRef, String)> = deps
        .iter()
        .filter_map(|d| {
            let s = lookup(d);
            not_ready(s.as_deref()).map(|why| (d.clone(), why))
        })
        .collect();
    (!waiting.is_empty()).then_some(Blocked::NotReady(waiting))
}

/// The status of a source held by `blocked`: Ready False with its reason;
/// Stalled only for a cycle (it needs a spec change).
pub fn held(old: &GitSourceStatus, blocked: &Blocked, generation: Option<i64>) -> GitSourceStatus {
    let mut s = old.clone();
    let mut conditions = s.conditions.take().unwrap_or_default();
    let message = blocked.message();
    set_condition(
        &mut conditions,
        "Ready",
        false,
        blocked.reason(),
        message.clone(),
        generation,
    );
    let stalled = matches!(blocked, Blocked::Cycle(_));
    set_condition(
        &mut conditions,
        "Stalled",
        stalled,
        blocked.reason(),
        if stalled {
            format!("{message}; change a dependsOn to break it")
        } else {
            "retrying once the dependencies are Ready".into()
        },
        generation,
    );
    s.conditions = Some(conditions);
    s
}

/// Whether `status` already says what `held` would (no write needed).
pub fn already_held(status: Option<&GitSourceStatus>, blocked: &Blocked) -> bool {
    status
        .and_then(crate::status::ready)
        .is_some_and(|c| c.reason == blocked.reason() && c.message == blocked.message())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use schemas::korral::{DependencyReference, GitSourceSpec};

    use super::*;

    fn src(name: &str, deps: &[&str], ready: Option<bool>) -> GitSource {
        let mut status = GitSourceStatus::default();
        if let Some(r) = ready {
            let mut c = Vec::new();
            set_condition(&mut c, "Ready", r, "Synced", String::new(), Some(1));
            status.conditions = Some(c);
            status.observed_generation = Some(1);
        }
        GitSource {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(GitSourceSpec {
                depends_on: Some(
                    deps.iter()
                        .map(|d| match d.split_once('/') {
                            Some((ns, n)) => DependencyReference {
                                name: n.into(),
                                namespace: Some(ns.into()),
                            },
                            None => DependencyReference {
                                name: (*d).into(),
                                namespace: None,
                            },
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: ready.map(|_| status),
            ..Default::default()
        }
    }

    fn world(sources: Vec<GitSource>) -> HashMap<ObjectRef, Arc<GitSource>> {
        sources
            .into_iter()
            .map(|s| (ObjectRef::of(&s), Arc::new(s)))
            .collect()
    }

    fn check_in(w: &HashMap<ObjectRef, Arc<GitSource>>, name: &str) -> Option<Blocked> {
        let me = w[&ObjectRef::new(Some("default"), name)].clone();
        check(&me, &|r| w.get(r).cloned())
    }

    #[test]
    fn a_chain_waits_for_each_link_and_names_it() {
        let w = world(vec![
            src("infra", &[], None),
            src("db", &["infra"], None),
            src("app", &["db"], None),
        ]);
        assert_eq!(check_in(&w, "infra"), None);
        let b = check_in(&w, "db").expect("db waits");
        assert_eq!(b.reason(), NOT_READY);
        assert!(
            b.message()
                .contains("GitSource default/infra has not synced yet"),
            "{}",
            b.message()
        );
        let w = world(vec![
            src("infra", &[], Some(true)),
            src("db", &["infra"], Some(false)),
            src("app", &["db", "other/missing"], None),
        ]);
        assert_eq!(check_in(&w, "db"), None);
        let m = check_in(&w, "app").expect("app waits").message();
        assert!(
            m.contains("default/db is not Ready (Synced)")
                && m.contains("other/missing does not exist"),
            "{m}"
        );
    }

    #[test]
    fn a_ready_dependency_at_an_older_generation_is_not_ready() {
        let mut infra = src("infra", &[], Some(true));
        infra.metadata.generation = Some(2);
        let w = world(vec![infra, src("db", &["infra"], None)]);
        assert!(
            check_in(&w, "db")
                .expect("waits")
                .message()
                .contains("current generation")
        );
    }

    #[test]
    fn cycles_are_named_from_the_source_and_only_for_sources_on_them() {
        let w = world(vec![
            src("a", &["b"], Some(true)),
            src("b", &["c"], Some(true)),
            src("c", &["a"], Some(true)),
            src("d", &["a"], Some(true)),
        ]);
        let b = check_in(&w, "a").expect("cycle");
        assert_eq!(b.reason(), CYCLE);
        assert_eq!(
            b.message(),
            "dependency cycle refused: default/a → default/b → default/c → default/a"
        );
        assert_eq!(
            check_in(&w, "c").map(|b| b.message()),
            Some("dependency cycle refused: default/c → default/a → default/b → default/c".into())
        );
        // d depends on the cycle but is not on it: it just waits (a is Ready here)
        assert_eq!(check_in(&w, "d"), None);
        // a diamond is no cycle
        let w = world(vec![
            src("top", &["l", "r"], None),
            src("l", &["base"], Some(true)),
            src("r", &["base"], Some(true)),
            src("base", &[], Some(true)),
        ]);
        assert_eq!(check_in(&w, "top"), None);
    }

    #[test]
    fn held_status_is_not_ready_and_stalled_only_for_a_cycle() {
        let cycle = Blocked::Cycle(vec![
            ObjectRef::new(Some("default"), "a"),
            ObjectRef::new(Some("default"), "a"),
        ]);
        let s = held(&GitSourceStatus::default(), &cycle, Some(3));
        let ready = crate::status::ready(&s).expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", CYCLE)
        );
        assert!(already_held(Some(&s), &cycle));
        let wait = Blocked::NotReady(vec![(
            ObjectRef::new(Some("default"), "x"),
            "does not exist".into(),
        )]);
        assert!(!already_held(Some(&s), &wait));
        let s = held(&s, &wait, Some(3));
        let stalled = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Stalled")
            .expect("stalled");
        assert_eq!(stalled.status, "False");
    }
}
