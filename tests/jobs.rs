//! The Job, CronJob and TTL-after-finished controllers against a real
//! `korral server`, with the fake kubelet finishing pods (the
//! `fake-kubelet.korral.dev/exit-code` annotation): completions and
//! parallelism, Indexed Jobs, the backoff limit, a pod failure policy,
//! per-index back-off (`backoffLimitPerIndex`, `maxFailedIndexes`,
//! `failedIndexes`), a success policy, `podReplacementPolicy: Failed`,
//! suspend, TTL deletion, CronJobs on a real minute and on a clock the test
//! moves, Forbid, history limits, `startingDeadlineSeconds`, `kubectl create
//! job --from=cronjob/…` and `kubectl wait --for=condition=complete`. The
//! fake kubelet's per-index exit codes
//! (`fake-kubelet.korral.dev/exit-code-by-index`) make some indexes fail.
//!
//! Tests that need controller tunables (a short pod-failure back-off, a
//! movable clock) run that controller in the test process against a server
//! started without it; the others use the server's own controllers.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reconcilers::controllers::clock::Clock;
use reconcilers::controllers::{self, Context, ControllerOptions, Informers};
use reconcilers::runtime::{Client, ControllerMetrics};
use serde_json::Value;
use support::fake_kubelet::{EXIT_CODE, EXIT_CODE_BY_INDEX, FakeKubelet};
use support::pod_watch::PodWatch;
use support::{Server, stderr, stdout, wait_for};

const LONG: Duration = Duration::from_secs(60);

/// Controllers running in the test process; stopped when dropped.
struct InProcess {
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    fn start(
        kubeconfig: &Path,
        names: &'static [&'static str],
        options: ControllerOptions,
    ) -> InProcess {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let kubeconfig = kubeconfig.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client =
                    Client::from_kubeconfig(Some(&kubeconfig), "jobs-test").expect("client");
                let informers = Informers::new(client.clone());
                let ctx = Context {
                    client,
                    informers: informers.clone(),
                    metrics: ControllerMetrics::new(),
                    shutdown: rx,
                    options: Arc::new(options),
                };
                controllers::run(ctx, names).await;
                informers.stop();
            });
        });
        InProcess {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn apply(s: &Server, yaml: &str) {
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        o.status.success(),
        "apply failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
}

fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let o = s.kubectl(&all);
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

/// A Job manifest; `pod_annotations` go on the pod template.
fn job(name: &str, spec_extra: &str, exit_code: Option<i32>) -> String {
    let annotations = exit_code
        .map(|c| format!("      annotations: {{{EXIT_CODE}: \"{c}\"}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec_extra}  template:\n    metadata:\n{annotations}      labels: {{app: {name}}}\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: busybox\n"
    )
}

fn condition(job: &Value, type_: &str) -> Option<(String, String)> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
        .map(|c| {
            (
                c["reason"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
}

fn pods_of(s: &Server, job: &str) -> Vec<Value> {
    get_json(
        s,
        &["pods", "-l", &format!("batch.kubernetes.io/job-name={job}")],
    )["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn events_about(s: &Server, name: &str) -> Vec<(String, String)> {
    get_json(s, &["events"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn has_event(s: &Server, name: &str, reason: &str) -> bool {
    events_about(s, name).iter().any(|(r, _)| r == reason)
}

/// `kubectl wait --for=condition=complete job/<job>`, which must succeed.
fn kubectl_wait_complete(s: &Server, job: &str, timeout: &str) {
    let o = s.kubectl(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{job}"),
        &format!("--timeout={timeout}"),
    ]);
    assert!(
        o.status.success(),
        "kubectl wait: {}{}\n{}",
        stdout(&o),
        stderr(&o),
        s.log()
    );
}

#[test]
fn completions_and_parallelism_bound_the_pods_and_kubectl_waits_for_completion() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    // the most pods active at once, sampled on every pod change
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let most = most.clone();
        PodWatch::start(
            &s.kubeconfig,
            "sampler",
            Some("batch.kubernetes.io/job-name=work"),
            move |_, pods| {
                let active = pods
                    .iter()
                    .filter(|p| {
                        let phase = p
                            .status
                            .as_ref()
                            .and_then(|s| s.phase.as_deref())
                            .unwrap_or("");
                        p.metadata.deletion_timestamp.is_none()
                            && phase != "Succeeded"
                            && phase != "Failed"
                    })
                    .count();
                most.fetch_max(active, Ordering::Relaxed);
                Box::pin(async {})
            },
        )
    };
    apply(
        &s,
        &job("work", "  completions: 5\n  parallelism: 2\n", Some(0)),
    );
    kubectl_wait_complete(&s, "work", "60s");
    drop(sampler);
    let j = get_json(&s, &["job", "work"]);
    assert_eq!(j["status"]["succeeded"], 5, "{j}");
    assert_eq!(j["status"]["failed"], Value::Null, "{j}");
    assert!(j["status"]["completionTime"].is_string(), "{j}");
    assert!(j["status"]["startTime"].is_string(), "{j}");
    let (reason, _) = condition(&j, "Complete").expect("Complete");
    assert_eq!(reason, "CompletionsReached");
    assert!(condition(&j, "SuccessCriteriaMet").is_some(), "{j}");
    let pods = pods_of(&s, "work");
    assert_eq!(pods.len(), 5, "exactly five pods ran");
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Succeeded");
        assert!(
            !p["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "batch.kubernetes.io/job-tracking")),
            "a counted pod keeps no tracking finalizer: {p}"
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
    }
    let top = most.load(Ordering::Relaxed);
    assert!((1..=2).contains(&top), "{top} pods were active at once");
    wait_for("the Job's events", LONG, || {
        has_event(&s, "work", "SuccessfulCreate") && has_event(&s, "work", "Completed")
    });
}

/// Each finished pod is counted exactly once: a Job whose pods finish as
/// fast as they start (the pod cache lagging behind the Job's status) ends
/// with `succeeded` equal to the pods that really ran to success. Finished
/// pods stay once released and none is deleted here, so listing them
/// counts every completion that ran; an overcount would show fewer.
#[test]
fn many_quick_completions_are_each_counted_once() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    apply(
        &s,
        &job("many", "  completions: 100\n  parallelism: 25\n", Some(0)),
    );
    kubectl_wait_complete(&s, "many", "120s");
    let j = get_json(&s, &["job", "many"]);
    let ran = pods_of(&s, "many")
        .iter()
        .filter(|p| p["status"]["phase"] == "Succeeded")
        .count();
    assert_eq!(ran, 100, "pods that ran to success; the Job: {j}");
    assert_eq!(j["status"]["succeeded"], 100, "{j}");
    let uncounted = &j["status"]["uncountedTerminatedPods"]["succeeded"];
    assert!(
        uncounted.as_array().is_none_or(Vec::is_empty),
        "nothing left uncounted: {j}"
    );
}

#[test]
fn indexed_jobs_give_each_pod_its_index() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    apply(
        &s,
        &job(
            "idx",
            "  completionMode: Indexed\n  completions: 3\n  parallelism: 3\n",
            Some(0),
        ),
    );
    wait_for("the Indexed Job to complete", LONG, || {
        condition(&get_json(&s, &["job", "idx"]), "Complete").is_some()
    });
    let j = get_json(&s, &["job", "idx"]);
    assert_eq!(j["status"]["completedIndexes"], "0-2", "{j}");
    assert_eq!(j["status"]["succeeded"], 3, "{j}");
    let mut seen = BTreeSet::new();
    for p in pods_of(&s, "idx") {
        let ix = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .expect("index annotation")
            .to_string();
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
            ix.as_str()
        );
        assert_eq!(p["spec"]["hostname"], format!("idx-{ix}"));
        let name = p["metadata"]["name"].as_str().unwrap_or("");
        assert!(name.starts_with(&format!("idx-{ix}-")), "{name}");
        let env = &p["spec"]["containers"][0]["env"];
        let var = env
            .as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == "JOB_COMPLETION_INDEX"))
            .expect("JOB_COMPLETION_INDEX");
        assert_eq!(
            var["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['batch.kubernetes.io/job-completion-index']"
        );
        seen.insert(ix);
    }
    let want: BTreeSet<String> = ["0", "1", "2"].iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, want);
}

#[test]
fn finished_jobs_go_after_their_ttl() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    apply(&s, &job("short", "  ttlSecondsAfterFinished: 1\n", Some(0)));
    wait_for("the Job to complete", LONG, || {
        condition(&get_json(&s, &["job", "short"]), "Complete").is_some()
    });
    let gone = support::poll_until(LONG, || {
        let o = s.kubectl(&["get", "job", "short"]);
        !o.status.success() && stderr(&o).contains("NotFound") && pods_of(&s, "short").is_empty()
    });
    assert!(
        gone,
        "the TTL controller did not delete the Job and its pods:\n{}\n{:?}\n{}",
        get_json(&s, &["job", "short"]),
        pods_of(&s, "short"),
        s.log()
    );
}

#[test]
fn failures_stop_at_the_backoff_limit_or_a_failure_policy_and_suspend_holds_pods() {
    let s = Server::start_with(&["--controllers", "all,-job"]);
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    let options = ControllerOptions {
        job_pod_failure_backoff: Duration::from_millis(200),
        job_pod_failure_max_backoff: Duration::from_secs(1),
        ..ControllerOptions::default()
    };
    let _jobs = InProcess::start(&s.kubeconfig, &["job"], options);

    apply(&s, &job("flaky", "  backoffLimit: 2\n", Some(1)));
    wait_for("the Job to fail", LONG, || {
        condition(&get_json(&s, &["job", "flaky"]), "Failed").is_some()
    });
    let j = get_json(&s, &["job", "flaky"]);
    assert_eq!(
        condition(&j, "Failed"),
        Some((
            "BackoffLimitExceeded".to_string(),
            "Job has reached the specified backoff limit".to_string()
        ))
    );
    assert!(condition(&j, "FailureTarget").is_some(), "{j}");
    assert_eq!(
        j["status"]["failed"], 3,
        "backoffLimit 2 means three pods: {j}"
    );
    assert_eq!(pods_of(&s, "flaky").len(), 3);
    wait_for("the BackoffLimitExceeded event", LONG, || {
        has_event(&s, "flaky", "BackoffLimitExceeded")
    });

    // exit code 42 fails the Job at once, whatever the backoff limit
    let policy = "  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    - action: FailJob\n      onExitCodes: {containerName: main, operator: In, values: [42]}\n";
    apply(&s, &job("fatal", policy, Some(42)));
    wait_for("the pod failure policy to fail the Job", LONG, || {
        condition(&get_json(&s, &["job", "fatal"]), "Failed").is_some()
    });
    let j = get_json(&s, &["job", "fatal"]);
    let (reason, message) = condition(&j, "Failed").expect("Failed");
    assert_eq!(reason, "PodFailurePolicy");
    assert!(
        message.starts_with("Container main for pod default/fatal-")
            && message.ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{message}"
    );
    assert_eq!(pods_of(&s, "fatal").len(), 1);

    // a suspended Job runs nothing until resumed
    apply(&s, &job("later", "  suspend: true\n", Some(0)));
    wait_for("the Suspended condition", LONG, || {
        condition(&get_json(&s, &["job", "later"]), "Suspended")
            == Some(("JobSuspended".to_string(), "Job suspended".to_string()))
    });
    assert!(pods_of(&s, "later").is_empty());
    s.ok(&[
        "patch",
        "job/later",
        "--type=merge",
        "-p",
        "{\"spec\":{\"suspend\":false}}",
    ]);
    let o = s.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/later",
        "--timeout=60s",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(has_event(&s, "later", "Resumed") || has_event(&s, "later", "Suspended"));
}

fn cronjob(name: &str, extra: &str, exit_code: Option<i32>) -> String {
    let annotations = exit_code
        .map(|c| format!("          annotations: {{{EXIT_CODE}: \"{c}\"}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: \"*/1 * * * *\"\n{extra}  jobTemplate:\n    spec:\n      template:\n        metadata:\n{annotations}          labels: {{cron: {name}}}\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: main\n            image: busybox\n"
    )
}

/// The Jobs a CronJob owns, by name.
fn jobs_of(s: &Server, cronjob: &str) -> Vec<Value> {
    let mut v: Vec<Value> = get_json(s, &["jobs"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|j| {
            j["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| {
                    o.iter()
                        .any(|r| r["kind"] == "CronJob" && r["name"] == cronjob)
                })
        })
        .collect();
    v.sort_by_key(|j| j["metadata"]["name"].as_str().unwrap_or("").to_string());
    v
}

#[test]
fn cronjobs_follow_a_moved_clock_forbid_overlaps_and_prune_history() {
    let s = Server::start_with(&["--controllers", "all,-cronjob"]);
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    let clock = Clock::system();
    let options = ControllerOptions {
        clock: clock.clone(),
        ..ControllerOptions::default()
    };
    let _cron = InProcess::start(&s.kubeconfig, &["cronjob"], options);
    let minute = Duration::from_secs(60);

    // Forbid: the first Job runs forever, so the next run is skipped
    apply(&s, &cronjob("tick", "  concurrencyPolicy: Forbid\n", None));
    clock.advance(minute);
    wait_for("the first scheduled Job", LONG, || {
        jobs_of(&s, "tick").len() == 1
    });
    let first = jobs_of(&s, "tick").remove(0);
    let name = first["metadata"]["name"].as_str().unwrap_or("").to_string();
    let minutes: i64 = name
        .trim_start_matches("tick-")
        .parse()
        .expect("minutes in the name");
    let stamp = first["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .expect("scheduled timestamp");
    let at = chrono::DateTime::parse_from_rfc3339(stamp).expect("RFC 3339");
    assert_eq!(at.timestamp(), minutes * 60, "{stamp} vs {name}");
    wait_for("status.active and lastScheduleTime", LONG, || {
        let cj = get_json(&s, &["cronjob", "tick"]);
        cj["status"]["active"][0]["name"] == name.as_str()
            && cj["status"]["lastScheduleTime"].is_string()
    });
    clock.advance(minute);
    wait_for("Forbid to skip the next run", LONG, || {
        has_event(&s, "tick", "JobAlreadyActive")
    });
    assert_eq!(jobs_of(&s, "tick").len(), 1, "Forbid started a second Job");

    // history: one successful Job kept
    apply(
        &s,
        &cronjob("hist", "  successfulJobsHistoryLimit: 1\n", Some(0)),
    );
    let mut seen = BTreeSet::new();
    for round in 1..=3 {
        clock.advance(minute);
        wait_for(&format!("run {round} to complete"), LONG, || {
            let jobs = jobs_of(&s, "hist");
            let newest = jobs
                .iter()
                .filter(|j| !seen.contains(j["metadata"]["name"].as_str().unwrap_or("")))
                .find(|j| condition(j, "Complete").is_some())
                .and_then(|j| j["metadata"]["name"].as_str().map(str::to_string));
            match newest {
                Some(n) => {
                    seen.insert(n);
                    true
                }
                None => false,
            }
        });
    }
    assert_eq!(seen.len(), 3);
    // the moved clock runs ahead of the wall clock the CronJob was created
    // by, so a missed run may be started too: the one Job kept is the
    // newest, which is the last one seen or a later one
    let last_seen = seen.iter().next_back().cloned().unwrap_or_default();
    let pruned = support::poll_until(LONG, || {
        let jobs = jobs_of(&s, "hist");
        jobs.len() == 1
            && jobs[0]["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n >= last_seen.as_str())
    });
    assert!(
        pruned,
        "the history limit did not keep only the newest Job of {seen:?}:\n{}\nevents:\n{}",
        serde_json::to_string_pretty(&jobs_of(&s, "hist")).unwrap_or_default(),
        stdout(&s.kubectl(&["get", "events", "--sort-by=.lastTimestamp"]))
    );
    wait_for("the pruned Jobs' pods to be collected", LONG, || {
        get_json(&s, &["pods", "-l", "cron=hist"])["items"]
            .as_array()
            .is_some_and(|p| p.len() == 1)
    });
    wait_for("lastSuccessfulTime", LONG, || {
        get_json(&s, &["cronjob", "hist"])["status"]["lastSuccessfulTime"].is_string()
    });
    assert!(has_event(&s, "hist", "SawCompletedJob"));
    assert!(has_event(&s, "hist", "SuccessfulDelete"));
}

#[test]
fn a_cronjob_runs_on_the_real_minute_and_kubectl_creates_jobs_from_it() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    apply(&s, &cronjob("every", "", Some(0)));
    // kubectl create job --from=cronjob/... makes an owned Job at once
    s.ok(&["create", "job", "manual", "--from=cronjob/every"]);
    let o = s.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/manual",
        "--timeout=60s",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let manual = get_json(&s, &["job", "manual"]);
    assert_eq!(
        manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(manual["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    // the schedule's next minute starts one (the server's own controller, real time)
    wait_for(
        "a scheduled Job within the minute",
        Duration::from_secs(75),
        || {
            jobs_of(&s, "every").iter().any(|j| {
                j["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("every-"))
            })
        },
    );
    wait_for("lastScheduleTime", LONG, || {
        get_json(&s, &["cronjob", "every"])["status"]["lastScheduleTime"].is_string()
    });
}

/// An Indexed Job whose pods exit by index (`codes`, e.g. `"1=1,3=1"`) or
/// with `exit_code` (others run forever without one).
fn indexed_job(name: &str, spec_extra: &str, codes: &str, exit_code: Option<i32>) -> String {
    let general = exit_code
        .map(|c| format!(", {EXIT_CODE}: \"{c}\""))
        .unwrap_or_default();
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  completionMode: Indexed\n{spec_extra}  template:\n    metadata:\n      annotations: {{{EXIT_CODE_BY_INDEX}: \"{codes}\"{general}}}\n      labels: {{app: {name}}}\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: busybox\n"
    )
}

/// The Job controller with a short pod-failure back-off.
fn quick_backoff() -> ControllerOptions {
    ControllerOptions {
        job_pod_failure_backoff: Duration::from_millis(200),
        job_pod_failure_max_backoff: Duration::from_secs(1),
        ..ControllerOptions::default()
    }
}

/// A pod's completion index and per-index failure count annotations.
fn index_and_failures(p: &Value) -> (String, String) {
    let a = &p["metadata"]["annotations"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        s(&a["batch.kubernetes.io/job-completion-index"]),
        s(&a["batch.kubernetes.io/job-index-failure-count"]),
    )
}

/// Waits for the Job to carry a true `type_` condition and returns it.
fn wait_condition(s: &Server, job: &str, type_: &str) -> Value {
    let done = support::poll_until(LONG, || {
        condition(&get_json(s, &["job", job]), type_).is_some()
    });
    let j = get_json(s, &["job", job]);
    assert!(done, "no {type_} condition on {job}: {j}\n{}", s.log());
    j
}

#[test]
fn indexes_fail_on_their_own_backoff_limit_up_to_max_failed_indexes() {
    let s = Server::start_with(&["--controllers", "all,-job"]);
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    let _jobs = InProcess::start(&s.kubeconfig, &["job"], quick_backoff());

    // the odd indexes fail every time: each is retried once (backoffLimitPerIndex
    // 1), then marked failed, while the even ones complete; the Job fails
    // once every index is decided
    apply(
        &s,
        &indexed_job(
            "odd",
            "  completions: 4\n  parallelism: 2\n  backoffLimitPerIndex: 1\n",
            "1=1,3=1",
            Some(0),
        ),
    );
    let j = wait_condition(&s, "odd", "Failed");
    assert_eq!(
        condition(&j, "Failed"),
        Some((
            "FailedIndexes".to_string(),
            "Job has failed indexes".to_string()
        )),
        "{j}"
    );
    assert!(condition(&j, "FailureTarget").is_some(), "{j}");
    assert_eq!(j["status"]["failedIndexes"], "1,3", "{j}");
    assert_eq!(j["status"]["completedIndexes"], "0,2", "{j}");
    assert_eq!(j["status"]["succeeded"], 2, "{j}");
    assert_eq!(j["status"]["failed"], 4, "two tries of each odd index: {j}");
    // each failing index ran twice, its replacement counting the failure
    let mut runs: Vec<(String, String)> = pods_of(&s, "odd")
        .iter()
        .filter(|p| p["status"]["phase"] == "Failed")
        .map(index_and_failures)
        .collect();
    runs.sort();
    let want: Vec<(String, String)> = [("1", "0"), ("1", "1"), ("3", "0"), ("3", "1")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(runs, want, "failed pods by (index, failure count)");

    // maxFailedIndexes 0: the first index to fail ends the Job at once
    apply(
        &s,
        &indexed_job(
            "strict",
            "  completions: 4\n  parallelism: 1\n  backoffLimitPerIndex: 1\n  maxFailedIndexes: 0\n",
            "",
            Some(1),
        ),
    );
    let j = wait_condition(&s, "strict", "Failed");
    assert_eq!(
        condition(&j, "Failed"),
        Some((
            "MaxFailedIndexesExceeded".to_string(),
            "Job has exceeded the specified maximal number of failed indexes".to_string()
        )),
        "{j}"
    );
    assert_eq!(j["status"]["failedIndexes"], "0", "{j}");
    assert_eq!(j["status"]["failed"], 2, "{j}");
    // omitted when empty, as kube's omitempty
    assert_eq!(
        j["status"]["completedIndexes"].as_str().unwrap_or(""),
        "",
        "{j}"
    );
    let mut runs: Vec<(String, String)> = pods_of(&s, "strict")
        .iter()
        .map(index_and_failures)
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        vec![
            ("0".to_string(), "0".to_string()),
            ("0".to_string(), "1".to_string())
        ],
        "only index 0 ran, twice"
    );
}

#[test]
fn a_success_policy_completes_the_job_early_and_ends_the_other_pods() {
    let s = Server::start();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    // index 0 succeeds, the others run until the Job ends them
    let policy = "  completions: 5\n  parallelism: 5\n  successPolicy:\n    rules:\n    - succeededIndexes: \"0,2-3\"\n      succeededCount: 1\n";
    apply(&s, &indexed_job("leader", policy, "0=0", None));
    let j = wait_condition(&s, "leader", "Complete");
    assert_eq!(
        condition(&j, "SuccessCriteriaMet"),
        Some((
            "SuccessPolicy".to_string(),
            "Matched rules at index 0".to_string()
        )),
        "{j}"
    );
    let (reason, _) = condition(&j, "Complete").expect("Complete");
    assert_eq!(reason, "SuccessPolicy", "{j}");
    assert_eq!(j["status"]["completedIndexes"], "0", "{j}");
    assert_eq!(j["status"]["succeeded"], 1, "{j}");
    assert_eq!(j["status"]["active"], Value::Null, "{j}");
    assert_eq!(j["status"]["terminating"], 0, "{j}");
    assert!(j["status"]["completionTime"].is_string(), "{j}");
    // SuccessCriteriaMet came first: Complete's transition is not earlier
    let at = |t: &str| {
        j["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or("")
            .to_string()
    };
    assert!(at("SuccessCriteriaMet") <= at("Complete"), "{j}");
    // the running pods were ended; only the succeeded one is left
    let left: Vec<String> = pods_of(&s, "leader")
        .iter()
        .map(|p| format!("{}:{}", index_and_failures(p).0, p["status"]["phase"]))
        .collect();
    assert_eq!(left, vec!["0:\"Succeeded\"".to_string()], "{j}");
}

#[test]
fn pod_replacement_policy_failed_waits_for_the_old_pod_to_be_terminal() {
    let s = Server::start_with(&["--controllers", "all,-job"]);
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    let _jobs = InProcess::start(&s.kubeconfig, &["job"], quick_backoff());
    let running = |job: &str| {
        pods_of(&s, job)
            .into_iter()
            .filter(|p| {
                p["status"]["phase"] == "Running" && !p["metadata"]["deletionTimestamp"].is_string()
            })
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };

    // Failed: a deleted pod is terminating until the kubelet reports it
    // Failed; the Job counts it as terminating and starts nothing meanwhile
    apply(
        &s,
        &job("patient", "  podReplacementPolicy: Failed\n", None),
    );
    wait_for("the first pod to run", LONG, || {
        running("patient").len() == 1
    });
    let first = running("patient").remove(0);
    s.ok(&["delete", "pod", &first, "--wait=false"]);
    let seen = support::poll_until(LONG, || {
        let st = &get_json(&s, &["job", "patient"])["status"];
        st["terminating"] == 1 && st["active"].is_null()
    });
    let j = get_json(&s, &["job", "patient"]);
    assert!(seen, "the Job did not count its pod terminating: {j}");
    let pods = pods_of(&s, "patient");
    assert_eq!(
        pods.len(),
        1,
        "a replacement before the old pod is terminal: {pods:?}"
    );
    assert!(pods[0]["metadata"]["deletionTimestamp"].is_string());
    assert!(
        j["status"]["failed"].as_i64().is_none_or(|f| f <= 0),
        "a terminating pod is not failed yet: {j}"
    );
    // the kubelet's word: the pod ended Failed; now it is counted and replaced
    s.ok(&[
        "patch",
        "pod",
        &first,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Failed"}}"#,
    ]);
    wait_for("the replacement to run and the old pod to go", LONG, || {
        let names: Vec<String> = pods_of(&s, "patient")
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let now = running("patient");
        now.len() == 1 && now[0] != first && !names.contains(&first)
    });
    wait_for(
        "the Job to count one failure and no terminating pod",
        LONG,
        || {
            let st = &get_json(&s, &["job", "patient"])["status"];
            st["failed"] == 1 && st["terminating"] == 0 && st["active"] == 1
        },
    );

    // the default (TerminatingOrFailed) replaces a pod as soon as it is deleted
    apply(&s, &job("eager", "", None));
    wait_for("the first pod to run", LONG, || running("eager").len() == 1);
    let first = running("eager").remove(0);
    s.ok(&["delete", "pod", &first, "--wait=false"]);
    wait_for("a replacement without the pod turning Failed", LONG, || {
        let now = running("eager");
        now.len() == 1 && now[0] != first
    });
    let counted = support::poll_until(LONG, || {
        get_json(&s, &["job", "eager"])["status"]["failed"] == 1
    });
    assert!(
        counted,
        "the deleted pod should count as failed: {}",
        get_json(&s, &["job", "eager"])
    );
}

/// A CronJob on `schedule` (UTC) whose Jobs run until deleted.
fn cronjob_on(name: &str, schedule: &str, extra: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: \"{schedule}\"\n  timeZone: Etc/UTC\n{extra}  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: main\n            image: busybox\n"
    )
}

#[test]
fn a_run_missed_by_more_than_the_starting_deadline_is_not_started() {
    use chrono::{Timelike, Utc};
    let s = Server::start_with(&["--controllers", "all,-cronjob"]);
    let clock = Clock::system();
    let options = ControllerOptions {
        clock: clock.clone(),
        ..ControllerOptions::default()
    };
    let _cron = InProcess::start(&s.kubeconfig, &["cronjob"], options);
    // hourly, at a minute ten minutes from now: the wall clock reaches no
    // start time while the test runs, only the moved clock does
    let minute = (Utc::now().minute() + 10) % 60;
    let schedule = format!("{minute} * * * *");
    apply(
        &s,
        &cronjob_on("late", &schedule, "  startingDeadlineSeconds: 10\n"),
    );
    apply(
        &s,
        &cronjob_on("lenient", &schedule, "  startingDeadlineSeconds: 300\n"),
    );
    let created = get_json(&s, &["cronjob", "lenient"])["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .expect("creationTimestamp");
    // the first start time after creation
    let mut first = created
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a whole minute");
    while first <= created || first.minute() != minute {
        first += chrono::Duration::minutes(1);
    }
    let name = |cron: &str, at: chrono::DateTime<Utc>| format!("{cron}-{}", at.timestamp() / 60);
    let names = |cron: &str| -> Vec<String> {
        jobs_of(&s, cron)
            .iter()
            .filter_map(|j| j["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    };

    // 30 s after the start time: within 300 s, past 10 s
    let to = |t: chrono::DateTime<Utc>| (t - clock.now()).to_std().unwrap_or_default();
    clock.advance(to(first + chrono::Duration::seconds(30)));
    wait_for("the lenient CronJob to start the missed run", LONG, || {
        names("lenient") == vec![name("lenient", first)]
    });
    // an hour on, 5 s after the next start time: both start that one, and
    // the run the late one missed never appears
    let next = first + chrono::Duration::hours(1);
    clock.advance(to(next + chrono::Duration::seconds(5)));
    wait_for("both CronJobs to start the next run", LONG, || {
        names("late").contains(&name("late", next))
            && names("lenient").contains(&name("lenient", next))
    });
    assert_eq!(
        names("late"),
        vec![name("late", next)],
        "the run missed by more than startingDeadlineSeconds was started"
    );
    assert_eq!(
        names("lenient"),
        vec![name("lenient", first), name("lenient", next)]
    );
    let cj = get_json(&s, &["cronjob", "late"]);
    let last = cj["status"]["lastScheduleTime"].as_str().unwrap_or("");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(last)
            .map(|t| t.timestamp())
            .ok(),
        Some(next.timestamp()),
        "{cj}"
    );
}
