//! The Job, CronJob and TTL-after-finished controllers against a real
//! `korral server`, with the fake kubelet finishing pods (the
//! `fake-kubelet.korral.dev/exit-code` annotation): completions and
//! parallelism, Indexed Jobs, the backoff limit, a pod failure policy,
//! suspend, TTL deletion, CronJobs on a real minute and on a clock the test
//! moves, Forbid, history limits, `kubectl create job --from=cronjob/…` and
//! `kubectl wait --for=condition=complete`.
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
use support::fake_kubelet::{EXIT_CODE, FakeKubelet};
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
    let o = s.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/work",
        "--timeout=60s",
    ]);
    assert!(
        o.status.success(),
        "kubectl wait: {}{}\n{}",
        stdout(&o),
        stderr(&o),
        s.log()
    );
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
