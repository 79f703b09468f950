//! End to end, without root (as the test's user, or as `nobody` when the
//! test runs as root): a `korral node` with the process runtime runs
//! a Deployment of three busybox httpd pods placed by the scheduler (each on
//! its own loopback pod IP, listed in their Service's Endpoints), serves their
//! logs through the API server, restarts a killed container, restarts one
//! whose liveness probe fails, marks pods NotReady when their readiness
//! probe fails (after a ConfigMap update reaches the volume), stops a
//! deleted pod within its grace period, and adopts its pods after a restart.
//! A daemon run as root gives each container its own mount namespace: the
//! real kubectl and the Python client inside pods use their ServiceAccount
//! through in-cluster configuration alone. Both ways, `kubectl attach -i`
//! feeds a container's own stdin and `kubectl exec -it` / `run -it --rm`
//! get terminals.

use crate::node_support;
use crate::support;

use std::time::{Duration, Instant};

use node_support::{
    NodeProc, READER_CANNOT_LIST_PODS, SA_DIR, alive, apply, check_adoption, check_attach,
    check_attach_stdin, check_exec, check_port_forward, check_readiness_moves_endpoints,
    check_streaming_exec, check_terminals, container_id, endpoint_ips, finished_log, http_get,
    jsonpath, let_reader_list_pods, ready, restarts, ticker_pod, uid_of, wait_node, wait_ready,
    wait_ready_pods, wait_root_ca,
};
use support::{Server, wait_for};

const NODE: &str = "proc-1";

/// A Deployment of three busybox httpd pods (scheduled by the scheduler) and a Service over them.
const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: busybox
        command: ["busybox", "httpd", "-f", "-v", "-p", "$(POD_IP):8080", "-h", "/www"]
        env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1, failureThreshold: 1}
        volumeMounts: [{name: page, mountPath: /www}]
      volumes: [{name: page, configMap: {name: page}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

const LIVE_POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  nodeName: proc-1
  terminationGracePeriodSeconds: 2
  containers:
  - name: live
    image: busybox
    command: ["sh", "-c", "echo ok > \"$1/healthz\"; exec busybox httpd -f -p \"$2\" -h \"$1\"", "sh", "/state", "$(POD_IP):8081"]
    env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
    livenessProbe: {exec: {command: ["test", "-e", "/state/healthz"]}, periodSeconds: 1, failureThreshold: 1}
    volumeMounts: [{name: state, mountPath: /state}]
  volumes: [{name: state, emptyDir: {}}]
"#;

fn page(body: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: page}}\ndata:\n  {body}\n")
}

fn pid_of(node: &NodeProc, s: &Server, pod: &str) -> i32 {
    let id = container_id(s, pod);
    let id = id.trim_start_matches("process://");
    std::fs::read_to_string(node.data_dir.join("containers").join(id).join("pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0)
}

/// Kills every container process the node started (they outlive the daemon by design).
struct Reaper(std::path::PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.0.join("containers")) {
            for e in rd.flatten() {
                if let Some(pid) = std::fs::read_to_string(e.path().join("pid"))
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok())
                {
                    let _ = std::process::Command::new("kill")
                        .args(["-9", "--", &format!("-{pid}")])
                        .status();
                }
            }
        }
    }
}

/// The unprivileged user a root test runs the daemon as.
const NOBODY: u32 = 65534;

/// Opens what the daemon needs to `nobody`: a copy of the binary it may run,
/// the way to its kubeconfig, and its data directory. Returns the copy's
/// directory (removed when dropped) and path.
fn unprivileged_setup(
    s: &Server,
    kubeconfig: &std::path::Path,
    data: &std::path::Path,
) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let open = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let dir = tempfile::tempdir().expect("bin dir");
    open(dir.path(), 0o755);
    let bin = dir.path().join("korral");
    std::fs::copy(support::korral_bin(), &bin).expect("copy korral");
    open(&bin, 0o755);
    open(s.dir.path(), 0o755);
    open(kubeconfig, 0o644);
    std::os::unix::fs::chown(data, Some(NOBODY), Some(NOBODY)).expect("chown data dir");
    (dir, bin)
}

/// A process-runtime node daemon on `s`, as `nobody` when the test is root.
struct ProcessNode {
    node: NodeProc,
    data: std::path::PathBuf,
    // dropped after `node`: kills the containers, then removes the binary copy
    _reaper: Reaper,
    _bin_dir: Option<tempfile::TempDir>,
}

/// A process-runtime node daemon on `s`, as `nobody` when the test is root.
fn start_process_node(s: &Server) -> ProcessNode {
    start_process_node_as(s, false)
}

/// A process-runtime node daemon on `s` running as root: its containers get
/// their own mount namespaces, volumes at their `mountPath`. Fails (does not
/// skip) when the test is not root.
fn start_root_process_node(s: &Server) -> ProcessNode {
    // SAFETY: geteuid has no preconditions
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "mount namespaces for the process runtime need root; run the tests as root, as CI does"
    );
    start_process_node_as(s, true)
}

fn start_process_node_as(s: &Server, root: bool) -> ProcessNode {
    let kc = s.kubeconfig_for(&format!("node:{NODE}"));
    let data = s.dir.path().join("node-data");
    std::fs::create_dir_all(&data).expect("data dir");
    let data = data.canonicalize().expect("canonical");
    let reaper = Reaper(data.clone());
    let args: Vec<String> = [
        "--kubeconfig",
        &kc.to_string_lossy(),
        "--name",
        NODE,
        "--runtime",
        "process",
        "--process-pod-ips",
        "loopback",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data.to_string_lossy(),
        "--heartbeat-interval",
        "1s",
        "--sync-period",
        "1s",
        "--backoff-base",
        "1s",
        "--label",
        "tier=test",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    // without root: as the test's own user, or — when the test runs as root — as `nobody`
    let (node, bin_dir) = if !root && unsafe { libc::geteuid() } == 0 {
        let (bin_dir, bin) = unprivileged_setup(s, &kc, &data);
        let node = NodeProc::start_as(NOBODY, &bin, &data, &s.dir.path().join("node.log"), &args);
        (node, Some(bin_dir))
    } else {
        (
            NodeProc::start(&data, &s.dir.path().join("node.log"), &args),
            None,
        )
    };
    wait_node(s, &node, NODE);
    ProcessNode {
        node,
        data,
        _reaper: reaper,
        _bin_dir: bin_dir,
    }
}

#[test]
fn process_node_runs_probes_restarts_and_adopts_pods() {
    let s = Server::start();
    let mut proc_node = start_process_node(&s);
    let data = proc_node.data.clone();
    let node = &mut proc_node.node;
    let daemon_uid = node.pid().and_then(uid_of);
    assert!(
        daemon_uid.is_some_and(|u| u != 0),
        "the daemon runs without root (uid {daemon_uid:?})"
    );
    // capacity from the machine, labels from flags
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    assert_eq!(
        jsonpath(&s, "node", NODE, "{.status.capacity.cpu}"),
        cpus.to_string()
    );
    assert_eq!(
        jsonpath(&s, "node", NODE, "{.metadata.labels.tier}"),
        "test"
    );
    assert!(
        !jsonpath(&s, "node", NODE, "{.spec.podCIDR}").is_empty(),
        "the API server allocates a pod CIDR"
    );

    apply(&s, &page("index.html: \"hello from korral\""));
    apply(&s, WEB);
    apply(&s, LIVE_POD);
    apply(&s, &ticker_pod("ticker", NODE, &[]));
    let web = wait_ready_pods(&s, node, "app=web", 3, Duration::from_secs(60));
    let mut ips = Vec::new();
    for pod in &web {
        assert_eq!(jsonpath(&s, "pod", pod, "{.spec.nodeName}"), NODE);
        let ip = jsonpath(&s, "pod", pod, "{.status.podIP}");
        assert!(ip.starts_with("127."), "loopback pod IP, got {ip:?}");
        assert_eq!(
            http_get(&format!("http://{ip}:8080/index.html")),
            "hello from korral"
        );
        ips.push(ip);
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "each pod has its own IP");
    wait_for(
        "the Service's Endpoints to list the 3 pods",
        Duration::from_secs(10),
        || endpoint_ips(&s, "web") == (ips.clone(), vec![]),
    );
    s.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let (w0, w1, w2) = (&web[0], &web[1], &web[2]);

    // logs through the API server (httpd -v logs each request)
    let logs = s.ok(&["logs", w0]);
    assert!(logs.contains("response:200"), "logs: {logs}");
    let tail = s.ok(&["logs", w0, "--tail", "1"]);
    assert_eq!(tail.lines().count(), 1, "--tail 1: {tail}");

    // the containers run as the daemon's user
    let pid = pid_of(node, &s, w0);
    assert_eq!(uid_of(u32::try_from(pid).unwrap_or(0)), daemon_uid);

    // kubectl exec: output, stderr and exit code apart, stdin
    check_exec(&s, w0, &["busybox"], "/www/index.html", "hello from korral");
    // kubectl exec -i streams: the command runs while stdin is open, input is echoed live
    check_streaming_exec(&s, w0, &["busybox"]);

    // kubectl port-forward to a pod and to a Service (kubectl picks a pod)
    check_port_forward(
        &s,
        &format!("pod/{w0}"),
        8080,
        "/index.html",
        "hello from korral",
    );
    check_port_forward(&s, "svc/web", 80, "/index.html", "hello from korral");

    // kubectl attach: the ticker's new output until it stops
    wait_ready(&s, node, "ticker", Duration::from_secs(30));
    check_attach(&s, "ticker", &["busybox"]);

    // a killed container is restarted
    let pid = pid_of(node, &s, w0);
    assert!(pid > 0 && alive(pid));
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    wait_for(
        "the killed container to restart",
        Duration::from_secs(20),
        || restarts(&s, w0) == 1 && ready(&s, w0) == "True",
    );
    let last = jsonpath(
        &s,
        "pod",
        w0,
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    );
    assert_eq!(last, "137", "lastState records the SIGKILL");
    let prev = s.ok(&["logs", w0, "--previous"]);
    assert!(prev.contains("response:200"), "previous logs: {prev}");

    // a failing liveness probe restarts the container
    wait_ready(&s, node, "live", Duration::from_secs(30));
    let uid = jsonpath(&s, "pod", "live", "{.metadata.uid}");
    let health = data.join("pods").join(&uid).join("volumes/state/healthz");
    assert!(
        health.exists(),
        "the emptyDir volume lives under the node's data dir"
    );
    // kubectl cp into the pod (tar over exec's stdin) lands in its volume
    let local = s.dir.path().join("note.txt");
    std::fs::write(&local, "copied in\n").expect("write");
    s.ok(&["cp", &local.to_string_lossy(), "live:/state/note.txt"]);
    assert_eq!(
        std::fs::read_to_string(health.with_file_name("note.txt")).expect("copied file"),
        "copied in\n"
    );
    std::fs::remove_file(&health).expect("remove healthz");
    wait_for(
        "live to be restarted by its liveness probe",
        Duration::from_secs(20),
        || restarts(&s, "live") >= 1,
    );
    wait_for(
        "live to recreate its health file",
        Duration::from_secs(10),
        || health.exists(),
    );

    // a failing readiness probe (the page leaves the ConfigMap) makes the pods NotReady
    // and moves them to the Endpoints' not-ready addresses
    check_readiness_moves_endpoints(
        &s,
        "web",
        &web,
        &ips,
        &page("other.html: \"x\""),
        &page("index.html: \"hello again\""),
    );
    assert_eq!(
        http_get(&format!(
            "http://{}:8080/index.html",
            jsonpath(&s, "pod", w1, "{.status.podIP}")
        )),
        "hello again"
    );

    // restarting the daemon adopts the running containers: same ids, no restarts
    check_adoption(&s, node, "web", "app=web", &web, Duration::from_secs(30));
    let containers = std::fs::read_dir(data.join("containers"))
        .expect("containers")
        .count();
    assert_eq!(
        containers,
        4 + 1 + 1 + 1 + 1,
        "4 web pods, live and the ticker (two attempts each for the killed one and live): no duplicates"
    );

    // deleting a pod stops its container within the grace period (5 s); the Deployment replaces it
    let pid = pid_of(node, &s, w2);
    assert!(alive(pid));
    let started = Instant::now();
    s.ok(&["delete", "pod", w2, "--wait=false"]);
    wait_for(
        "the deleted pod's process to stop",
        Duration::from_secs(8),
        || !alive(pid),
    );
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "stopped after {:?}",
        started.elapsed()
    );
    wait_for(
        "the deleted pod to be gone",
        Duration::from_secs(10),
        || !s.kubectl(&["get", "pod", w2]).status.success(),
    );
    let replaced = wait_ready_pods(&s, node, "app=web", 4, Duration::from_secs(30));
    assert!(!replaced.contains(w2), "a replacement, not the deleted pod");
}

/// `kubectl attach -i` feeds a container's own stdin (shared by sessions,
/// kept across a daemon restart, closed by the first session with
/// `stdinOnce`), and terminals work: `kubectl exec -it POD -- sh` and
/// `kubectl run -it --rm`, with the real kubectl on a terminal of its own.
#[test]
fn process_node_attaches_stdin_and_serves_terminals() {
    let s = Server::start();
    let mut proc_node = start_process_node(&s);
    check_attach_stdin(&s, &mut proc_node.node, NODE, &["busybox"]);
    check_terminals(
        &s,
        &proc_node.node,
        NODE,
        "reader",
        &["busybox", "sh"],
        "busybox",
    );
}

/// The same with a daemon run as root: containers (and execs) in mount
/// namespaces of their own, where the terminal is set up as well.
#[test]
fn root_process_node_attaches_stdin_and_serves_terminals() {
    let s = Server::start();
    let mut proc_node = start_root_process_node(&s);
    check_attach_stdin(&s, &mut proc_node.node, NODE, &["busybox"]);
    check_terminals(
        &s,
        &proc_node.node,
        NODE,
        "reader",
        &["busybox", "sh"],
        "busybox",
    );
}

/// A pod that uses its ServiceAccount with the real kubectl and no
/// kubeconfig: in-cluster configuration from the `KUBERNETES_SERVICE_*`
/// variables (the process runtime points them at the API server: no service
/// proxy) and the token and CA of its `kube-api-access` volume, mounted at
/// the absolute path kubectl reads in the container's mount namespace. It
/// asks who it is, reads its namespace, tries to write into the read-only
/// volume, then runs `kubectl get pods`. `HOME` (kubectl's cache) is an
/// emptyDir at a path the node does not have either.
fn sa_pod(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  serviceAccountName: reader
  containers:
  - name: kubectl
    image: busybox
    command:
    - sh
    - -c
    - |
      kubectl auth whoami -o jsonpath='{{.status.userInfo.username}}'
      echo
      echo "namespace=$(cat {SA_DIR}/namespace)"
      touch {SA_DIR}/x 2>&1 || true
      kubectl get pods -o name 2>&1 || true
    env: [{{name: HOME, value: /home/korral-test}}]
    volumeMounts: [{{name: home, mountPath: /home/korral-test}}]
  volumes: [{{name: home, emptyDir: {{}}}}]
"#
    )
}

/// Runs `sa_pod(name)` to completion and returns its log.
fn run_sa_pod(s: &Server, name: &str) -> String {
    apply(s, &sa_pod(name));
    finished_log(s, name)
}

/// Whether any of the pods' mount paths exist on the host (they must not
/// be created there).
fn host_has(paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn a_pod_uses_its_service_account_token() {
    let s = Server::start();
    let _node = start_root_process_node(&s);
    let before_on_host = host_has(&[SA_DIR, "/home/korral-test"]);
    s.ok(&["create", "serviceaccount", "reader"]);
    wait_root_ca(&s);
    let out = run_sa_pod(&s, "before");
    // admission: the account is the pod's, with the projected volume mounted read-only
    assert_eq!(
        jsonpath(&s, "pod", "before", "{.spec.serviceAccount}"),
        "reader"
    );
    let volume = jsonpath(&s, "pod", "before", "{.spec.volumes[?(@.projected)].name}");
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    assert_eq!(
        jsonpath(
            &s,
            "pod",
            "before",
            &format!("{{.spec.containers[0].volumeMounts[?(@.name==\"{volume}\")].mountPath}}")
        ),
        SA_DIR
    );
    assert_eq!(
        jsonpath(
            &s,
            "pod",
            "before",
            "{.spec.volumes[?(@.projected)].projected.sources[0].serviceAccountToken.expirationSeconds}"
        ),
        "3607"
    );
    assert!(
        out.contains("system:serviceaccount:default:reader"),
        "the token authenticates the pod's ServiceAccount: {out}"
    );
    assert!(out.contains("namespace=default"), "{out}");
    assert!(
        out.contains(&format!("{SA_DIR}/x': Read-only file system")),
        "the token volume is read-only: {out}"
    );
    // RBAC: forbidden with kube's text until a RoleBinding grants it
    assert!(out.contains(READER_CANNOT_LIST_PODS), "{out}");
    let_reader_list_pods(&s);
    let out = run_sa_pod(&s, "after");
    assert!(
        out.contains("pod/before"),
        "the binding lets it list pods: {out}"
    );
    assert!(!out.contains("forbidden"), "{out}");
    // the mount points lived in the containers' namespaces only
    assert_eq!(
        host_has(&[SA_DIR, "/home/korral-test"]),
        before_on_host,
        "mount points were left on the host"
    );
    // a pod naming an account that does not exist is refused, as by kube-apiserver
    let refused = s.kubectl(&[
        "run",
        "ghost",
        "--image=busybox",
        "--overrides={\"spec\":{\"serviceAccountName\":\"ghost\"}}",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(
            "error looking up service account default/ghost: serviceaccount \"ghost\" not found"
        ),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// The Python client in a pod: `load_incluster_config()` (which verifies the
/// API server's certificate for `KUBERNETES_SERVICE_HOST` against the
/// volume's `ca.crt`), the ConfigMaps of its namespace listed, then idle so
/// that `kubectl exec` can look inside its mount namespace.
const PY_LIST_CONFIGMAPS: &str = r#"
import time
from kubernetes import client, config
config.load_incluster_config()
c = client.Configuration.get_default_copy()
print("host", c.host, "verify_ssl", c.verify_ssl)
ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
for cm in client.CoreV1Api().list_namespaced_config_map(ns).items:
    print("configmap", cm.metadata.name)
print("listed", flush=True)
time.sleep(3600)
"#;

#[test]
fn the_python_client_runs_in_cluster_in_a_pod() {
    let s = Server::start();
    let _node = start_root_process_node(&s);
    s.ok(&["create", "serviceaccount", "lister"]);
    s.ok(&["create", "configmap", "alpha", "--from-literal=k=v"]);
    s.ok(&["create", "configmap", "beta", "--from-literal=k=v"]);
    s.ok(&[
        "create",
        "role",
        "configmap-reader",
        "--verb=list",
        "--resource=configmaps",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "lister",
        "--role=configmap-reader",
        "--serviceaccount=default:lister",
    ]);
    wait_root_ca(&s);
    let port = s
        .url
        .rsplit(':')
        .next()
        .expect("the server URL has a port")
        .trim_end_matches('/')
        .to_string();
    for (i, python) in support::python::pythons().iter().enumerate() {
        let name = format!("py-{i}");
        // the interpreter itself (`python3` may be a pyenv shim needing the test's env)
        let o = std::process::Command::new(python)
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("run python");
        let interpreter = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(interpreter.starts_with('/'), "{python}: {interpreter:?}");
        let pod = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "serviceAccountName": "lister",
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "python",
                    "image": "python",
                    "command": [interpreter, "-u", "-c", PY_LIST_CONFIGMAPS],
                }],
            },
        });
        apply(&s, &pod.to_string());
        let log = || String::from_utf8_lossy(&s.kubectl(&["logs", &name]).stdout).to_string();
        let listed = support::poll_until(Duration::from_secs(60), || {
            log().contains("listed")
                || ["Succeeded", "Failed"]
                    .contains(&jsonpath(&s, "pod", &name, "{.status.phase}").as_str())
        });
        let out = log();
        let versions = support::python::versions(python);
        assert!(
            listed,
            "{python} ({versions}): no listing within 60 s or the pod ended; log:\n{out}\npod: {}",
            s.ok(&["get", "pod", &name, "-o", "yaml"])
        );
        for want in [
            "configmap alpha",
            "configmap beta",
            "configmap kube-root-ca.crt",
            "listed",
        ] {
            assert!(
                out.contains(want),
                "{python} ({versions}): {want:?} in:\n{out}"
            );
        }
        // the server's certificate is valid for the address in-cluster clients are given
        assert!(
            out.contains(&format!("host https://127.0.0.1:{port} verify_ssl True")),
            "{python} ({versions}): {out}"
        );
        // exec joins the container's mount namespace
        let o = s.kubectl(&["exec", &name, "--", "cat", &format!("{SA_DIR}/namespace")]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "default",
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        s.ok(&["delete", "pod", &name, "--wait=false"]);
    }
}
