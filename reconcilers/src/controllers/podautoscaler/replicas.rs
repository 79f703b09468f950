//! The replica calculator of the HorizontalPodAutoscaler, after kube's
//! `replica_calculator.go`: from the target's pods and their resource usage,
//! the replica count that brings the average to the target — ignoring pods
//! being deleted or failed, treating unready (or still starting, for CPU)
//! pods and pods without metrics conservatively so that a missing sample
//! never causes a scale in the wrong direction, and not moving within the
//! tolerance. Pure: the caller gathers pods and samples.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// One pod of the scale target as the calculator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSample {
    /// The pod's name (metrics are keyed by it).
    pub name: String,
    /// The pod is being deleted or has failed: it does not count at all.
    pub ignored: bool,
    /// The pod is Pending, or (CPU only) not ready / still initialising:
    /// its usage is not trusted.
    pub unready: bool,
    /// The sum of the requests of the measured containers, in milli-units;
    /// or, when a measured container has none, kube's message saying which
    /// (utilisation targets then fail).
    pub request: Result<i64, String>,
}

/// What to aim for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// A percentage of the pods' requests (`averageUtilization`).
    Utilization(i32),
    /// An average value per pod, in milli-units (`averageValue`).
    AverageValue(i64),
}

/// The calculator's answer for one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// The replica count this metric asks for.
    pub replicas: i32,
    /// The current utilisation in percent of requests (utilisation targets).
    pub utilization: Option<i32>,
    /// The current average usage per pod, in milli-units.
    pub average: i64,
}

/// Computes the replicas for one resource metric. `usage` maps pod names to
/// their measured usage in milli-units (only pods with a sample appear).
pub fn calculate(
    pods: &[PodSample],
    usage: &BTreeMap<String, i64>,
    target: Target,
    current_replicas: i32,
    tolerance: f64,
) -> Result<Recommendation, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let mut metrics: BTreeMap<&str, i64> = BTreeMap::new();
    let mut ready = 0usize;
    let mut unready = Vec::new();
    let mut missing = Vec::new();
    for p in pods.iter().filter(|p| !p.ignored) {
        if p.unready {
            unready.push(p);
            continue;
        }
        match usage.get(&p.name) {
            Some(v) => {
                metrics.insert(&p.name, *v);
                ready += 1;
            }
            None => missing.push(p),
        }
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let requests: BTreeMap<&str, i64> = match target {
        Target::Utilization(_) => {
            let mut r = BTreeMap::new();
            for p in pods.iter().filter(|p| !p.ignored) {
                r.insert(p.name.as_str(), p.request.clone()?);
            }
            r
        }
        Target::AverageValue(_) => BTreeMap::new(),
    };
    let (ratio, utilization, average) = usage_ratio(&metrics, &requests, target)?;
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    let answer = |replicas| Recommendation {
        replicas,
        utilization,
        average,
    };
    if !scale_up_with_unready && missing.is_empty() {
        if (1.0 - ratio).abs() <= tolerance {
            return Ok(answer(current_replicas));
        }
        return Ok(answer(ceil(ratio * ready as f64)));
    }
    // pods without a sample count against the direction of the change: at
    // their full request (or the target, if higher) on a scale-down, at zero
    // on a scale-up; unready pods count at zero on a scale-up
    for p in &missing {
        let assumed = if ratio < 1.0 {
            match target {
                Target::Utilization(t) => {
                    requests.get(p.name.as_str()).copied().unwrap_or(0) * i64::from(t.max(100))
                        / 100
                }
                Target::AverageValue(v) => v,
            }
        } else {
            0
        };
        if ratio != 1.0 {
            metrics.insert(&p.name, assumed);
        }
    }
    if scale_up_with_unready {
        for p in &unready {
            metrics.insert(&p.name, 0);
        }
    }
    let (new_ratio, _, _) = usage_ratio(&metrics, &requests, target)?;
    if (1.0 - new_ratio).abs() <= tolerance
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(answer(current_replicas));
    }
    let replicas = ceil(new_ratio * metrics.len() as f64);
    if (new_ratio < 1.0 && replicas > current_replicas)
        || (new_ratio > 1.0 && replicas < current_replicas)
    {
        return Ok(answer(current_replicas));
    }
    Ok(answer(replicas))
}

/// The ratio of usage to target, the utilisation (utilisation targets) and
/// the average usage per measured pod.
fn usage_ratio(
    metrics: &BTreeMap<&str, i64>,
    requests: &BTreeMap<&str, i64>,
    target: Target,
) -> Result<(f64, Option<i32>, i64), String> {
    match target {
        Target::Utilization(t) => {
            let (mut used, mut requested, mut n) = (0i128, 0i128, 0i128);
            for (pod, v) in metrics {
                if let Some(r) = requests.get(pod) {
                    used += i128::from(*v);
                    requested += i128::from(*r);
                    n += 1;
                }
            }
            if requested == 0 {
                return Err("no metrics returned matched known pods".into());
            }
            let utilization = i32::try_from(used * 100 / requested).unwrap_or(i32::MAX);
            let average = i64::try_from(used / n).unwrap_or(i64::MAX);
            Ok((
                f64::from(utilization) / f64::from(t.max(1)),
                Some(utilization),
                average,
            ))
        }
        Target::AverageValue(v) => {
            let sum: i128 = metrics.values().map(|m| i128::from(*m)).sum();
            let average = i64::try_from(sum / metrics.len().max(1) as i128).unwrap_or(i64::MAX);
            Ok((average as f64 / v.max(1) as f64, None, average))
        }
    }
}

fn ceil(x: f64) -> i32 {
    let c = x.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        c as i32
    }
}

/// Whether a CPU sample of a ready pod should be distrusted, as kube decides:
/// within the CPU initialisation period after the pod started, a sample is
/// trusted only once the pod is ready and a whole metric window has passed
/// since it became so; afterwards, only a pod that has never been ready
/// (its readiness unchanged since shortly after start) is distrusted.
pub fn cpu_unready(
    now: DateTime<Utc>,
    started: Option<DateTime<Utc>>,
    ready: Option<(bool, DateTime<Utc>)>,
    sample: Option<(DateTime<Utc>, chrono::Duration)>,
    initialization: chrono::Duration,
    initial_readiness_delay: chrono::Duration,
) -> bool {
    let (Some(started), Some((is_ready, since))) = (started, ready) else {
        return true;
    };
    if started + initialization > now {
        let window_after_ready = match sample {
            Some((at, window)) => at < since + window,
            None => false,
        };
        !is_ready || window_after_ready
    } else {
        !is_ready && started + initial_readiness_delay > since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, request: i64) -> PodSample {
        PodSample {
            name: name.into(),
            ignored: false,
            unready: false,
            request: Ok(request),
        }
    }

    fn usage(v: &[(&str, i64)]) -> BTreeMap<String, i64> {
        v.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn busy_pods_scale_up_by_the_ratio_and_quiet_ones_down() {
        let pods = vec![pod("a", 100), pod("b", 100)];
        let r = calculate(
            &pods,
            &usage(&[("a", 250), ("b", 250)]),
            Target::Utilization(50),
            2,
            0.1,
        )
        .expect("ok");
        assert_eq!(r.replicas, 10, "250% of request against a 50% target");
        assert_eq!(r.utilization, Some(250));
        assert_eq!(r.average, 250);
        let r = calculate(
            &pods,
            &usage(&[("a", 10), ("b", 10)]),
            Target::Utilization(50),
            2,
            0.1,
        )
        .expect("ok");
        assert_eq!(r.replicas, 1);
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        let pods = vec![pod("a", 100), pod("b", 100), pod("c", 100)];
        let r = calculate(
            &pods,
            &usage(&[("a", 52), ("b", 55), ("c", 53)]),
            Target::Utilization(50),
            3,
            0.1,
        )
        .expect("ok");
        assert_eq!(r.replicas, 3);
        assert_eq!(r.utilization, Some(53));
    }

    #[test]
    fn missing_samples_never_push_the_wrong_way() {
        // scale-down with a missing pod: it counts as using its full request
        let pods = vec![pod("a", 100), pod("b", 100), pod("c", 100)];
        let r = calculate(
            &pods,
            &usage(&[("a", 10), ("b", 10)]),
            Target::Utilization(50),
            3,
            0.1,
        )
        .expect("ok");
        // (10 + 10 + 100) / 300 = 40% of a 50% target → ceil(0.8 * 3) = 3
        assert_eq!(r.replicas, 3);
        // scale-up with a missing pod: it counts as zero
        let r = calculate(
            &pods,
            &usage(&[("a", 200), ("b", 200)]),
            Target::Utilization(50),
            3,
            0.1,
        )
        .expect("ok");
        // (200 + 200 + 0) / 300 = 133% → ratio 2.66 → 8
        assert_eq!(r.replicas, 8);
    }

    #[test]
    fn unready_pods_count_as_idle_on_a_scale_up() {
        let mut pods = vec![pod("a", 100), pod("b", 100)];
        pods[1].unready = true;
        let r = calculate(
            &pods,
            &usage(&[("a", 100), ("b", 100)]),
            Target::Utilization(50),
            2,
            0.1,
        )
        .expect("ok");
        // a: 100%, b counted 0 → 50% → within tolerance → stay
        assert_eq!(r.replicas, 2);
    }

    #[test]
    fn ignored_pods_and_missing_requests() {
        let mut pods = vec![pod("a", 100), pod("gone", 100)];
        pods[1].ignored = true;
        let r = calculate(
            &pods,
            &usage(&[("a", 100), ("gone", 900)]),
            Target::Utilization(100),
            2,
            0.1,
        )
        .expect("ok");
        assert_eq!(r.replicas, 2, "a at target, the deleted pod ignored");
        pods[0].request = Err("missing request for cpu in container app of Pod a".into());
        let e = calculate(
            &pods,
            &usage(&[("a", 100)]),
            Target::Utilization(100),
            2,
            0.1,
        )
        .expect_err("no request");
        assert!(e.contains("missing request"), "{e}");
        assert!(calculate(&[], &usage(&[]), Target::Utilization(50), 1, 0.1).is_err());
        let e = calculate(
            &[pod("a", 100)],
            &usage(&[]),
            Target::Utilization(50),
            1,
            0.1,
        )
        .expect_err("no metrics");
        assert!(e.contains("did not receive metrics"), "{e}");
    }

    #[test]
    fn average_value_targets_need_no_requests() {
        let mut pods = vec![pod("a", 0), pod("b", 0)];
        pods[0].request = Err("no request".into());
        let r = calculate(
            &pods,
            &usage(&[("a", 300_000), ("b", 500_000)]),
            Target::AverageValue(100_000),
            2,
            0.1,
        )
        .expect("ok");
        assert_eq!(r.replicas, 8);
        assert_eq!(r.average, 400_000);
        assert_eq!(r.utilization, None);
    }

    #[test]
    fn cpu_samples_of_starting_pods_are_distrusted() {
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("t");
        let s = chrono::Duration::seconds;
        let init = s(300);
        let delay = s(30);
        // started 60 s ago, ready 50 s ago, sample window 15 s taken now: trusted
        assert!(!cpu_unready(
            t0 + s(60),
            Some(t0),
            Some((true, t0 + s(10))),
            Some((t0 + s(60), s(15))),
            init,
            delay
        ));
        // ready only 5 s ago: the sample's window overlaps the unready time
        assert!(cpu_unready(
            t0 + s(60),
            Some(t0),
            Some((true, t0 + s(55))),
            Some((t0 + s(60), s(15))),
            init,
            delay
        ));
        // long after start, not ready but was ready once: trusted (kube's rule)
        assert!(!cpu_unready(
            t0 + s(900),
            Some(t0),
            Some((false, t0 + s(800))),
            None,
            init,
            delay
        ));
        // long after start, never ready
        assert!(cpu_unready(
            t0 + s(900),
            Some(t0),
            Some((false, t0 + s(5))),
            None,
            init,
            delay
        ));
        assert!(cpu_unready(t0, None, None, None, init, delay));
    }
}
