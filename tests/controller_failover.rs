//! Controllers as separate processes: a controller killed mid-rollout and
//! started again finishes the rollout without duplicate pods; two controller
//! processes on one etcd never both act, and killing the leader hands over
//! within the lease duration.

use crate::support;

use crate::etcd;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::fake_kubelet::FakeKubelet;
use support::pod_watch::PodWatch;
use support::{ChildGuard, Server, stdout, wait_for};

const LONG: Duration = Duration::from_secs(60);

fn controllers(kubeconfig: &Path, identity: &str, log: &Path) -> ChildGuard {
    let child = Command::new(support::korral_bin())
        .args(["controllers", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--identity", identity, "--metrics-addr", "127.0.0.1:0"])
        .args([
            "--leader-elect-lease-duration",
            "4s",
            "--leader-elect-renew-deadline",
            "3s",
            "--leader-elect-retry-period",
            "500ms",
        ])
        .env("KORRAL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start korral controllers");
    ChildGuard(child)
}

fn holder(s: &Server) -> String {
    stdout(&s.kubectl(&[
        "get",
        "lease",
        "korral-controllers",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]))
}

fn deployment(replicas: i32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  strategy:\n    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n"
    )
}

/// The most live (not terminating) `app=web` pods seen at once, over every change.
struct PodCounter {
    max: Arc<AtomicUsize>,
    _watch: PodWatch,
}

impl PodCounter {
    fn start(kubeconfig: &Path) -> PodCounter {
        let max = Arc::new(AtomicUsize::new(0));
        let m = max.clone();
        let watch = PodWatch::start(kubeconfig, "counter", Some("app=web"), move |_, pods| {
            let live = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count();
            m.fetch_max(live, Ordering::Relaxed);
            Box::pin(async {})
        });
        PodCounter { max, _watch: watch }
    }

    fn finish(self) -> usize {
        let PodCounter { max, _watch } = self;
        drop(_watch);
        max.load(Ordering::Relaxed)
    }
}

fn rollout_done(s: &Server, image: &str, replicas: usize) -> bool {
    let o = s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
    ]);
    let images: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    images.len() == replicas
        && images.iter().all(|i| i == image)
        && stdout(&s.kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.status.availableReplicas}/{.status.updatedReplicas}",
        ])) == format!("{replicas}/{replicas}")
}

#[test]
fn a_controller_restarted_mid_rollout_finishes_it_without_duplicates() {
    let s = Server::start_with(&["--controllers", "none"]);
    let kc = s.dir.path().join("controller.kubeconfig");
    let mut c = controllers(&kc, "solo", &s.dir.path().join("c1.log"));
    let kubelet = FakeKubelet::start(&s.kubeconfig);
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(&deployment(4, "nginx:1")));
    assert!(o.status.success());
    wait_for("v1 rolled out", LONG, || rollout_done(&s, "nginx:1", 4));
    // new pods never become ready: the rollout stops after its first surge pod
    drop(kubelet);
    let counter = PodCounter::start(&s.kubeconfig);
    s.ok(&["set", "image", "deploy/web", "c=nginx:2"]);
    wait_for("the rollout to start", LONG, || {
        stdout(&s.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]))
        .contains("nginx:2")
    });
    c.kill();
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    let _c = controllers(&kc, "solo", &s.dir.path().join("c2.log"));
    wait_for("v2 rolled out after the restart", LONG, || {
        rollout_done(&s, "nginx:2", 4)
    });
    let most = counter.finish();
    assert!(
        most <= 5,
        "at most replicas + maxSurge pods at once, saw {most}"
    );
    let rs = stdout(&s.kubectl(&["get", "rs", "-l", "app=web", "-o", "name"]));
    assert_eq!(rs.lines().count(), 2, "one replica set per template: {rs}");
}

#[test]
fn two_controller_processes_on_etcd_hand_over_when_the_leader_dies() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let etcd = rt
        .block_on(etcd::EtcdProcess::start())
        .unwrap_or_else(|e| panic!("etcd could not start: {e}"));
    let s = Server::start_with(&["--controllers", "none", "--etcd-servers", &etcd.endpoint()]);
    let kc = s.dir.path().join("controller.kubeconfig");
    let mut a = controllers(&kc, "ctrl-a", &s.dir.path().join("a.log"));
    let mut b = controllers(&kc, "ctrl-b", &s.dir.path().join("b.log"));
    let _kubelet = FakeKubelet::start(&s.kubeconfig);
    wait_for("a leader", LONG, || {
        matches!(holder(&s).as_str(), "ctrl-a" | "ctrl-b")
    });
    let leader = holder(&s);
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(&deployment(3, "nginx:1")));
    assert!(o.status.success());
    wait_for("the leader to roll out v1", LONG, || {
        rollout_done(&s, "nginx:1", 3)
    });
    // only the leader acted: the standby never scaled anything
    let standby_log = if leader == "ctrl-a" { "b.log" } else { "a.log" };
    let log = std::fs::read_to_string(s.dir.path().join(standby_log)).unwrap_or_default();
    assert!(
        !log.contains("became leader"),
        "the standby also led:\n{log}"
    );
    // kill the leader: the standby takes over within the lease duration
    let killed_at = Instant::now();
    let (dead, standby) = if leader == "ctrl-a" {
        (&mut a, "ctrl-b")
    } else {
        (&mut b, "ctrl-a")
    };
    dead.kill();
    wait_for(
        "the standby to take the lease",
        Duration::from_secs(20),
        || holder(&s) == standby,
    );
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(4 + 3),
        "hand-over took {took:?} (lease duration 4 s)"
    );
    s.ok(&["set", "image", "deploy/web", "c=nginx:2"]);
    wait_for("the new leader to roll out v2", LONG, || {
        rollout_done(&s, "nginx:2", 3)
    });
}
