//! The registry of served kinds: the built-in kinds plus custom kinds added
//! and removed while a server runs (one set per CustomResourceDefinition).
//! Readers take an immutable snapshot ([`Kinds`]); a change swaps in a new
//! snapshot with a higher generation, so caches built from one (discovery,
//! OpenAPI) know when to rebuild.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::kinds::{KindInfo, LookupError, builtin_kinds};

/// One consistent view of the served kinds.
#[derive(Debug, Default)]
pub struct Kinds {
    list: Vec<Arc<KindInfo>>,
    /// Bumped by every change.
    pub generation: u64,
}

/// Finds a kind by apiVersion and kind in a list.
pub(crate) fn find(
    list: &[Arc<KindInfo>],
    api_version: &str,
    kind: &str,
) -> Result<Arc<KindInfo>, LookupError> {
    if let Some(k) = list
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
    {
        return Ok(k.clone());
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let served: Vec<String> = list
        .iter()
        .filter(|k| k.kind == kind && (k.group == group || k.is_builtin()))
        .map(|k| k.api_version.clone())
        .collect();
    if !served.is_empty() {
        return Err(LookupError::WrongVersion {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            served,
        });
    }
    Err(LookupError::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    })
}

impl Kinds {
    /// Every served kind.
    pub fn all(&self) -> &[Arc<KindInfo>] {
        &self.list
    }

    /// Finds a kind by apiVersion and kind.
    pub fn lookup(&self, api_version: &str, kind: &str) -> Result<Arc<KindInfo>, LookupError> {
        find(&self.list, api_version, kind)
    }

    /// Finds a kind by group, version and plural resource name.
    pub fn by_resource(&self, group: &str, version: &str, plural: &str) -> Option<Arc<KindInfo>> {
        self.list
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    }

    /// The kinds of one group/version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<KindInfo>> + 'a {
        self.list
            .iter()
            .filter(move |k| k.group == group && k.version == version)
    }

    /// The groups served, each with its versions (preferred first), in
    /// discovery order: built-in groups as listed, then custom groups by name.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for k in &self.list {
            match out.iter_mut().find(|(g, _)| *g == k.group) {
                Some((_, versions)) => {
                    if !versions.contains(&k.version) {
                        versions.push(k.version.clone());
                    }
                }
                None => out.push((k.group.clone(), vec![k.version.clone()])),
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by(|a, b| compare_versions(a, b));
        }
        out
    }
}

/// Kubernetes' version priority: GA before beta before alpha, higher first
/// (`v2`, `v1`, `v1beta2`, `v1beta1`, `v1alpha1`), then others by name.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn rank(v: &str) -> (u8, i64, i64, String) {
        let parse = |s: &str| -> Option<(i64, u8, i64)> {
            let rest = s.strip_prefix('v')?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let major: i64 = digits.parse().ok()?;
            let tail = &rest[digits.len()..];
            if tail.is_empty() {
                return Some((major, 0, 0));
            }
            for (word, level) in [("beta", 1u8), ("alpha", 2u8)] {
                if let Some(n) = tail.strip_prefix(word) {
                    return Some((major, level, n.parse().ok()?));
                }
            }
            None
        };
        match parse(v) {
            Some((major, level, minor)) => (level, -major, -minor, String::new()),
            None => (3, 0, 0, v.to_string()),
        }
    }
    rank(a).cmp(&rank(b))
}

/// The served kinds of one server or validation run.
#[derive(Debug)]
pub struct Registry {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    snapshot: Arc<Kinds>,
    /// Custom kinds by the name of the CustomResourceDefinition that defines them.
    custom: BTreeMap<String, Vec<Arc<KindInfo>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// A registry of the built-in kinds.
    pub fn builtin() -> Registry {
        let registry = Registry {
            state: RwLock::new(State::default()),
        };
        registry.rebuild(|_| {});
        registry
    }

    /// The current kinds.
    pub fn snapshot(&self) -> Arc<Kinds> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .snapshot
            .clone()
    }

    /// Finds a kind by apiVersion and kind.
    pub fn lookup(&self, api_version: &str, kind: &str) -> Result<Arc<KindInfo>, LookupError> {
        self.snapshot().lookup(api_version, kind)
    }

    /// Finds a kind by group, version and plural resource name.
    pub fn by_resource(&self, group: &str, version: &str, plural: &str) -> Option<Arc<KindInfo>> {
        self.snapshot().by_resource(group, version, plural)
    }

    /// Sets the kinds a CustomResourceDefinition defines (all its served
    /// versions), replacing what it defined before; an empty list removes them.
    pub fn set_custom(&self, crd_name: &str, kinds: Vec<Arc<KindInfo>>) {
        self.rebuild(|custom| {
            if kinds.is_empty() {
                custom.remove(crd_name);
            } else {
                custom.insert(crd_name.to_string(), kinds);
            }
        });
    }

    /// The kinds a CustomResourceDefinition defines now.
    pub fn custom_kinds(&self, crd_name: &str) -> Vec<Arc<KindInfo>> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .custom
            .get(crd_name)
            .cloned()
            .unwrap_or_default()
    }

    fn rebuild(&self, change: impl FnOnce(&mut BTreeMap<String, Vec<Arc<KindInfo>>>)) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut state.custom);
        let mut list: Vec<Arc<KindInfo>> = builtin_kinds().to_vec();
        let mut custom: Vec<Arc<KindInfo>> = state.custom.values().flatten().cloned().collect();
        custom.sort_by(|a, b| {
            (&a.group, &a.plural)
                .cmp(&(&b.group, &b.plural))
                .then_with(|| compare_versions(&a.version, &b.version))
        });
        list.extend(custom);
        let generation = state.snapshot.generation + 1;
        state.snapshot = Arc::new(Kinds { list, generation });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_kubernetes_prefers_them() {
        let mut v = vec!["v1alpha1", "v1beta1", "v2", "v1", "v1beta2", "foo", "v10"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            vec!["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn groups_list_every_version_preferred_first() {
        let r = Registry::builtin();
        let groups = r.snapshot().groups();
        let autoscaling = groups
            .iter()
            .find(|(g, _)| g == "autoscaling")
            .expect("autoscaling");
        assert_eq!(autoscaling.1, vec!["v2", "v1"]);
        assert_eq!(groups[0].0, "");
    }
}
