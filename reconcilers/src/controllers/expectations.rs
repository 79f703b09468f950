//! Expectations, as Kubernetes' controllers keep them: after creating or
//! deleting pods, a controller does not act on its owner again until its
//! cache has seen those exact pods appear or go (or five minutes pass), so a
//! slow cache never causes double creates or double deletes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::runtime::ObjectRef;

/// How long expectations are trusted before the controller acts anyway.
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// Outstanding creations and deletions per owner.
#[derive(Debug, Default)]
pub struct Expectations {
    by_owner: Mutex<HashMap<ObjectRef, Pending>>,
}

impl Expectations {
    /// Records pods created for `owner` (by name).
    pub fn created(&self, owner: &ObjectRef, names: impl IntoIterator<Item = String>) {
        if let Ok(mut m) = self.by_owner.lock() {
            let p = m.entry(owner.clone()).or_default();
            p.creates.extend(names);
            p.since = Some(Instant::now());
        }
    }

    /// Records pods deleted for `owner` (by name).
    pub fn deleted(&self, owner: &ObjectRef, names: impl IntoIterator<Item = String>) {
        if let Ok(mut m) = self.by_owner.lock() {
            let p = m.entry(owner.clone()).or_default();
            p.deletes.extend(names);
            p.since = Some(Instant::now());
        }
    }

    /// Whether `owner` may act: every expected pod observed, given whether
    /// the cache has a pod (`present`) and whether it is going away (`gone`).
    pub fn satisfied(
        &self,
        owner: &ObjectRef,
        present: impl Fn(&str) -> bool,
        gone: impl Fn(&str) -> bool,
    ) -> bool {
        let Ok(mut m) = self.by_owner.lock() else {
            return true;
        };
        let Some(p) = m.get_mut(owner) else {
            return true;
        };
        p.creates.retain(|n| !present(n));
        p.deletes.retain(|n| !gone(n));
        let expired = p.since.is_some_and(|t| t.elapsed() > EXPECTATIONS_TTL);
        if (p.creates.is_empty() && p.deletes.is_empty()) || expired {
            m.remove(owner);
            return true;
        }
        false
    }

    /// Stops waiting for the pod `name` of `owner` (its creation or deletion
    /// failed, so the cache will never show it).
    pub fn observed(&self, owner: &ObjectRef, name: &str) {
        if let Ok(mut m) = self.by_owner.lock()
            && let Some(p) = m.get_mut(owner)
        {
            p.creates.remove(name);
            p.deletes.remove(name);
        }
    }

    /// Forgets `owner` (it was deleted).
    pub fn forget(&self, owner: &ObjectRef) {
        if let Ok(mut m) = self.by_owner.lock() {
            m.remove(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_every_expected_pod() {
        let e = Expectations::default();
        let rs = ObjectRef::new(Some("ns"), "rs");
        assert!(e.satisfied(&rs, |_| false, |_| false));
        e.created(&rs, ["a".to_string(), "b".to_string()]);
        assert!(!e.satisfied(&rs, |n| n == "a", |_| false));
        assert!(e.satisfied(&rs, |_| true, |_| false));
        e.deleted(&rs, ["c".to_string()]);
        assert!(!e.satisfied(&rs, |_| true, |_| false));
        assert!(e.satisfied(&rs, |_| true, |n| n == "c"));
    }
}
