//! Completion indexes of Indexed Jobs, as kube's `indexed_job_utils.go` keeps
//! them: ordered, merged intervals written as `status.completedIndexes` /
//! `status.failedIndexes` ("1,3-5,7"), the index a pod carries in its
//! `batch.kubernetes.io/job-completion-index` annotation, and the indexes
//! still to start.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use schemas::MetaExt;

/// The annotation (and label) naming a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The annotation counting the failures of an index so far (backoffLimitPerIndex).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// The annotation counting the failures of an index a pod failure policy ignored.
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// One run of consecutive indexes, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// The first index.
    pub first: i64,
    /// The last index.
    pub last: i64,
}

/// Ordered, non-overlapping, non-adjacent intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals(pub Vec<Interval>);

impl Intervals {
    /// Parses kube's text form, keeping indexes below `completions` (corrupt
    /// parts are skipped, as kube does).
    pub fn parse(text: &str, completions: i64) -> Intervals {
        let mut out: Vec<Interval> = Vec::new();
        if text.is_empty() {
            return Intervals(out);
        }
        for part in text.split(',') {
            let mut limits = part.split('-');
            let Some(Ok(first)) = limits.next().map(str::parse::<i64>) else {
                continue;
            };
            if first >= completions {
                break;
            }
            let last = match limits.next() {
                Some(l) => match l.parse::<i64>() {
                    Ok(l) => l.min(completions - 1),
                    Err(_) => continue,
                },
                None => first,
            };
            match out.last_mut() {
                Some(prev) if prev.last == first - 1 => prev.last = last,
                _ => out.push(Interval { first, last }),
            }
        }
        Intervals(out)
    }

    /// These intervals with `indexes` (ascending) added.
    pub fn with_indexes(&self, indexes: impl IntoIterator<Item = i64>) -> Intervals {
        let new: Vec<Interval> = indexes
            .into_iter()
            .map(|i| Interval { first: i, last: i })
            .collect();
        self.merge(&Intervals(new))
    }

    /// The union of two interval lists.
    pub fn merge(&self, other: &Intervals) -> Intervals {
        let mut all: Vec<Interval> = self.0.iter().chain(other.0.iter()).copied().collect();
        all.sort_by_key(|i| i.first);
        let mut out: Vec<Interval> = Vec::new();
        for i in all {
            match out.last_mut() {
                Some(prev) if i.first <= prev.last + 1 => prev.last = prev.last.max(i.last),
                _ => out.push(i),
            }
        }
        Intervals(out)
    }

    /// How many indexes.
    pub fn total(&self) -> i64 {
        self.0.iter().map(|i| i.last - i.first + 1).sum()
    }

    /// Whether `ix` is included.
    pub fn has(&self, ix: i64) -> bool {
        self.0.iter().any(|i| i.first <= ix && ix <= i.last)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Intervals {
    /// kube's form: "0,1" for two, "0-2" for three or more.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, i) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", i.first)?;
            if i.last == i.first + 1 {
                write!(f, ",{}", i.last)?;
            } else if i.last > i.first {
                write!(f, "-{}", i.last)?;
            }
        }
        Ok(())
    }
}

/// The completion index a pod carries, if a valid one.
pub fn completion_index(p: &Pod) -> Option<i64> {
    p.metadata
        .annotations_map()
        .get(COMPLETION_INDEX)
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|i| *i >= 0)
}

/// The indexes of these pods.
pub fn indexes_of<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> BTreeSet<i64> {
    pods.into_iter().filter_map(completion_index).collect()
}

/// Up to `count` indexes below `completions` not in `taken`, lowest first.
pub fn first_pending(taken: &Intervals, count: usize, completions: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut candidate = 0i64;
    for iv in &taken.0 {
        while candidate < completions && out.len() < count && candidate < iv.first {
            out.push(candidate);
            candidate += 1;
        }
        candidate = candidate.max(iv.last + 1);
    }
    while candidate < completions && out.len() < count {
        out.push(candidate);
        candidate += 1;
    }
    out
}

/// The generateName of an index's pods: `<job>-<index>-`, the job's name
/// shortened so the prefix fits the 58 characters generateName allows.
pub fn generate_name(job: &str, index: i64) -> String {
    const MAX_GENERATED_NAME_LENGTH: usize = 58;
    let suffix = format!("-{index}-");
    let prefix = format!("{job}{suffix}");
    if prefix.len() > MAX_GENERATED_NAME_LENGTH {
        let keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
        let mut cut = keep.min(job.len());
        while !job.is_char_boundary(cut) {
            cut -= 1;
        }
        return format!("{}{suffix}", &job[..cut]);
    }
    prefix
}

/// A non-negative int32 annotation (0 when absent or invalid, as kube reads them).
pub fn count_annotation(p: &Pod, key: &str) -> i64 {
    p.metadata
        .annotations_map()
        .get(key)
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| (0..=i64::from(i32::MAX)).contains(v))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_and_write_kubes_form() {
        let i = Intervals::parse("0,1,3-5,7", 10);
        assert_eq!(i.to_string(), "0,1,3-5,7");
        assert_eq!(i.total(), 6);
        assert!(i.has(4) && !i.has(2) && !i.has(6));
        // out-of-range indexes are dropped, corrupt parts skipped
        assert_eq!(Intervals::parse("1-9,x,12", 5).to_string(), "1-4");
        assert_eq!(Intervals::parse("", 5).total(), 0);
        // adjacent runs merge
        assert_eq!(Intervals::parse("0-1,2", 5).to_string(), "0-2");
    }

    #[test]
    fn adding_indexes_merges_runs() {
        let i = Intervals::parse("0,2", 10).with_indexes([1, 5, 6]);
        assert_eq!(i.to_string(), "0-2,5,6");
        let j = i.merge(&Intervals::parse("3-4", 10));
        assert_eq!(j.to_string(), "0-6");
    }

    #[test]
    fn pending_indexes_skip_the_taken_ones() {
        let taken = Intervals::parse("0,2-3", 10);
        assert_eq!(first_pending(&taken, 3, 10), vec![1, 4, 5]);
        assert_eq!(first_pending(&taken, 10, 5), vec![1, 4]);
        assert_eq!(first_pending(&Intervals::default(), 2, 10), vec![0, 1]);
        assert!(first_pending(&taken, 0, 10).is_empty());
    }

    #[test]
    fn generate_names_fit() {
        assert_eq!(generate_name("pi", 3), "pi-3-");
        let long = "a".repeat(63);
        let g = generate_name(&long, 12);
        assert_eq!(g.len(), 58);
        assert!(g.ends_with("-12-"));
    }
}
