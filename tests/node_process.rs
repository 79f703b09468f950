//! End to end, without root (as the test's user, or as `nobody` when the
//! test runs as root): a `korral node` with the process runtime runs
//! a Deployment of three busybox httpd pods placed by the scheduler (each on
//! its own loopback pod IP, listed in their Service's Endpoints), serves their
//! logs through the API server, restarts a killed container, restarts one
//! whose liveness probe fails, marks pods NotReady when their readiness
//! probe fails (after a ConfigMap update reaches the volume), stops a
//! deleted pod within its grace period, and adopts its pods after a restart.

use crate::node_support;
use crate::support;

use std::time::{Duration, Instant};

use node_support::{
    NodeProc, alive, apply, check_adoption, check_exec, check_readiness_moves_endpoints,
    check_streaming_exec, container_id, endpoint_ips, http_get, jsonpath, ready, restarts, uid_of,
    wait_node, wait_ready, wait_ready_pods,
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

fn start_process_node(s: &Server) -> ProcessNode {
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
    let (node, bin_dir) = if unsafe { libc::geteuid() } == 0 {
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
        4 + 1 + 1 + 1,
        "4 web pods and live (two attempts each for the killed one and live): no duplicates"
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

/// A pod that asks the API server who it is with the real kubectl, from the
/// token, CA and namespace of its `kube-api-access` volume and the
/// `KUBERNETES_SERVICE_*` variables (the process runtime points them at the
/// API server: no service proxy). The mount path words in env are rewritten
/// to the volume's node directory by the process runtime.
/// A pod that uses its ServiceAccount with the real kubectl, from the
/// token, CA and namespace of its `kube-api-access` volume and the
/// `KUBERNETES_SERVICE_*` variables (the process runtime points them at the
/// API server: no service proxy): who it is, then `kubectl get pods`. The
/// mount path in `SA_DIR` is rewritten to the volume's node directory by the
/// process runtime (no mount namespace without root).
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
      k() {{
        kubectl --server "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT" \
          --certificate-authority "$SA_DIR/ca.crt" --token "$(cat "$SA_DIR/token")" "$@"
      }}
      k auth whoami -o jsonpath='{{.status.userInfo.username}}'
      echo
      echo "namespace=$(cat "$SA_DIR/namespace")"
      k get pods -o name 2>&1 || true
    env:
    - {{name: SA_DIR, value: /var/run/secrets/kubernetes.io/serviceaccount}}
    - {{name: HOME, value: /tmp}}
"#
    )
}

/// Runs `sa_pod(name)` to completion and returns its log.
fn run_sa_pod(s: &Server, name: &str) -> String {
    apply(s, &sa_pod(name));
    wait_for("the pod to finish", Duration::from_secs(60), || {
        let phase = jsonpath(s, "pod", name, "{.status.phase}");
        phase == "Succeeded" || phase == "Failed"
    });
    let logs = s.kubectl(&["logs", name]);
    let out = String::from_utf8_lossy(&logs.stdout).to_string();
    assert_eq!(
        jsonpath(s, "pod", name, "{.status.phase}"),
        "Succeeded",
        "logs: {out}"
    );
    out
}

#[test]
fn a_pod_uses_its_service_account_token() {
    let s = Server::start();
    let _node = start_process_node(&s);
    s.ok(&["create", "serviceaccount", "reader"]);
    // the publisher puts the cluster CA in every namespace
    wait_for(
        "kube-root-ca.crt in the default namespace",
        Duration::from_secs(20),
        || {
            s.kubectl(&[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ])
            .stdout
            .starts_with(b"-----BEGIN CERTIFICATE-----")
        },
    );
    let out = run_sa_pod(&s, "before");
    // admission: the account is the pod's, with the projected volume mounted
    assert_eq!(
        jsonpath(&s, "pod", "before", "{.spec.serviceAccount}"),
        "reader"
    );
    let volume = jsonpath(&s, "pod", "before", "{.spec.volumes[0].name}");
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    assert_eq!(
        jsonpath(
            &s,
            "pod",
            "before",
            "{.spec.containers[0].volumeMounts[0].mountPath}"
        ),
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(
        jsonpath(
            &s,
            "pod",
            "before",
            "{.spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds}"
        ),
        "3607"
    );
    assert!(
        out.contains("system:serviceaccount:default:reader"),
        "the token authenticates the pod's ServiceAccount: {out}"
    );
    assert!(out.contains("namespace=default"), "{out}");
    // RBAC: forbidden with kube's text until a RoleBinding grants it
    assert!(
        out.contains(
            "pods is forbidden: User \"system:serviceaccount:default:reader\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{out}"
    );
    s.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "reader",
        "--role=pod-reader",
        "--serviceaccount=default:reader",
    ]);
    let out = run_sa_pod(&s, "after");
    assert!(
        out.contains("pod/before"),
        "the binding lets it list pods: {out}"
    );
    assert!(!out.contains("forbidden"), "{out}");
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
