//! End to end with real containerd + runc (root): the test starts its own
//! containerd (own root, state, sockets; CRI disabled), builds a busybox
//! image from busybox-static and imports it, then a `korral node` with the
//! containerd runtime runs a Deployment of httpd pods placed by the
//! scheduler, each with its own IP from the node's pod CIDR and listed in
//! its Service's Endpoints; logs, restart of a killed container, liveness and readiness
//! probes, cgroup memory limits, graceful delete and adoption after a daemon
//! restart are checked. Everything the test created (containers, shims,
//! mounts, network namespaces, the bridge, cgroups) is removed even when it
//! fails.
//!
//! In-cluster clients: inside a network namespace the test makes (the
//! `net_support` lab), a node with the service proxy runs a pod whose image
//! holds the machine's static kubectl; with no kubeconfig it reaches the API
//! server through the `kubernetes` Service's cluster IP with its
//! ServiceAccount's token.

use crate::net_support;
use crate::node_support;
use crate::support;

use std::time::Duration;

use net_support::{Lab, start_containerd_node};
use node_support::containerd::{Containerd, run};
use node_support::{
    NodeProc, READER_CANNOT_LIST_PODS, SA_DIR, apply, check_adoption, check_exec,
    check_readiness_moves_endpoints, container_id, endpoint_ips, finished_log, http_get, jsonpath,
    let_reader_list_pods, ready, restarts, wait_node, wait_ready, wait_ready_pods, wait_root_ca,
};
use support::{Server, wait_for};

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
      terminationGracePeriodSeconds: 3
      containers:
      - name: web
        image: busybox:1.36
        command: ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1, failureThreshold: 1}
        resources: {limits: {memory: 64Mi, cpu: 500m}}
        volumeMounts: [{name: page, mountPath: /www, readOnly: true}]
      volumes: [{name: page, configMap: {name: page}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

fn live_pod(node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: live
    image: busybox:1.36
    command: ["sh", "-c", "echo ok > /tmp/healthz; if [ ! -e /state/once ]; then touch /state/once; (sleep 2; rm /tmp/healthz) & fi; exec httpd -f -p 8081 -h /tmp"]
    livenessProbe: {{exec: {{command: ["cat", "/tmp/healthz"]}}, periodSeconds: 1, failureThreshold: 1}}
    volumeMounts: [{{name: state, mountPath: /state}}]
  volumes: [{{name: state, emptyDir: {{}}}}]
"#
    )
}

fn page(body: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: page}}\ndata:\n  {body}\n")
}

#[test]
fn containerd_node_runs_pods_with_their_own_ips() {
    let s = Server::start();
    let node_name = format!("ctd-{}", std::process::id());
    let ctd_dir = s.dir.path().join("ctd");
    std::fs::create_dir_all(&ctd_dir).expect("dir");
    let ctd = Containerd::start(&ctd_dir, &node_name);

    // the image: built from busybox-static, imported through containerd's content and images services
    ctd.import_busybox("busybox:1.36");
    assert!(
        ctd.ctr(&["images", "ls", "-q"])
            .1
            .contains("docker.io/library/busybox:1.36")
    );

    let kc = s.kubeconfig_for(&format!("node:{node_name}"));
    let data = ctd_dir.join("node-data");
    let args: Vec<String> = [
        "--kubeconfig",
        &kc.to_string_lossy(),
        "--name",
        &node_name,
        "--runtime",
        "containerd",
        // this node runs in the machine's own network namespace: no service proxy rules there
        "--proxy-mode",
        "none",
        // the test's image stays, however full the machine's disk is (image GC is tests/node_image_gc.rs's)
        "--image-gc-high-threshold",
        "100",
        "--containerd-address",
        &ctd.sock.to_string_lossy(),
        "--containerd-namespace",
        &ctd.namespace,
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
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut node = NodeProc::start(&data, &s.dir.path().join("node.log"), &args);
    wait_node(&s, &node, &node_name);
    assert!(
        jsonpath(
            &s,
            "node",
            &node_name,
            "{.status.nodeInfo.containerRuntimeVersion}"
        )
        .starts_with("containerd://1.")
    );
    let cidr = jsonpath(&s, "node", &node_name, "{.spec.podCIDR}");
    let prefix = cidr
        .rsplit_once('.')
        .map(|(p, _)| format!("{p}."))
        .expect("pod CIDR");

    apply(&s, &page("index.html: \"hello from containerd\""));
    apply(&s, WEB);
    apply(&s, &live_pod(&node_name));
    let web = wait_ready_pods(&s, &node, "app=web", 3, Duration::from_secs(90));
    let mut ips = Vec::new();
    for pod in &web {
        assert_eq!(jsonpath(&s, "pod", pod, "{.spec.nodeName}"), node_name);
        let ip = jsonpath(&s, "pod", pod, "{.status.podIP}");
        assert!(
            ip.starts_with(&prefix),
            "pod IP {ip} from the node's pod CIDR {cidr}"
        );
        assert_eq!(
            http_get(&format!("http://{ip}:8080/index.html")),
            "hello from containerd"
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
    let (w0, w2) = (&web[0], &web[2]);

    // the memory limit is a cgroup limit
    let id0 = container_id(&s, w0);
    let id0 = id0.trim_start_matches("containerd://");
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/korral-{node_name}/{id0}/memory.limit_in_bytes"
    ))
    .expect("memory cgroup");
    assert_eq!(limit.trim(), (64u64 << 20).to_string());

    // logs through the API server
    let logs = s.ok(&["logs", w0]);
    assert!(logs.contains("response:200"), "logs: {logs}");

    // kubectl exec: output, stderr and exit code apart, stdin
    check_exec(&s, w0, &[], "/www/index.html", "hello from containerd");

    // kubectl cp (tar over exec) into and out of a pod
    let local = s.dir.path().join("note.txt");
    std::fs::write(&local, "copied in\n").expect("write");
    s.ok(&[
        "cp",
        &local.to_string_lossy(),
        &format!("{w0}:/tmp/note.txt"),
    ]);
    assert_eq!(
        s.ok(&["exec", w0, "--", "cat", "/tmp/note.txt"]),
        "copied in\n"
    );
    let back = s.dir.path().join("back.txt");
    s.ok(&[
        "cp",
        &format!("{w0}:/tmp/note.txt"),
        &back.to_string_lossy(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&back).expect("copied back"),
        "copied in\n"
    );

    // killing the container's process restarts it
    let pid = ctd.task_pid(id0);
    assert!(pid > 0, "task pid of {id0}");
    let _ = run("kill", &["-9", &pid.to_string()]);
    wait_for(
        "the killed container to restart",
        Duration::from_secs(30),
        || restarts(&s, w0) == 1 && ready(&s, w0) == "True",
    );

    // a failing liveness probe (exec through containerd) restarts the container once
    wait_for(
        "live to be restarted by its liveness probe",
        Duration::from_secs(40),
        || restarts(&s, "live") >= 1,
    );
    wait_ready(&s, &node, "live", Duration::from_secs(30));

    // a failing readiness probe makes pods NotReady and moves them out of the Endpoints' ready addresses
    check_readiness_moves_endpoints(
        &s,
        "web",
        &web,
        &ips,
        &page("other.html: \"x\""),
        &page("index.html: \"back\""),
    );

    // the daemon restarts and adopts: same container ids, no restarts, no duplicates
    check_adoption(
        &s,
        &mut node,
        "web",
        "app=web",
        &web,
        Duration::from_secs(60),
    );
    // one container per pod plus each restart's previous attempt: 4 web pods
    // and live, the killed one's restart and live's (a probe timing out on a
    // loaded machine can restart live once more); adoption adds none
    let restart_counts = s.ok(&[
        "get",
        "pods",
        "-o",
        "jsonpath={range .items[*]}{.status.containerStatuses[0].restartCount} {end}",
    ]);
    let counts: Vec<usize> = restart_counts
        .split_whitespace()
        .map(|n| n.parse().expect("a restart count"))
        .collect();
    assert_eq!(counts.len(), 5, "4 web pods and live: {restart_counts}");
    assert_eq!(
        ctd.container_count(),
        counts.len() + counts.iter().sum::<usize>(),
        "a container per pod and per restart ({restart_counts}), no duplicates"
    );

    // deleting a pod stops its container after the pod's grace period (3 s; httpd as PID 1
    // ignores SIGTERM, so it takes the SIGKILL), well before the default 30 s would end: a
    // deadline between the two (a whole-suite run on 2 cores once took 15 s to get there)
    let id2 = container_id(&s, w2);
    let id2 = id2.trim_start_matches("containerd://").to_string();
    s.ok(&["delete", "pod", w2, "--wait=false"]);
    wait_for(
        "the deleted pod's container to go before the default grace period would end",
        Duration::from_secs(25),
        || ctd.task_pid(&id2) == 0,
    );
    wait_for(
        "the deleted pod to be gone",
        Duration::from_secs(10),
        || !s.kubectl(&["get", "pod", w2]).status.success(),
    );
    let replaced = wait_ready_pods(&s, &node, "app=web", 4, Duration::from_secs(60));
    assert!(!replaced.contains(w2), "a replacement, not the deleted pod");
    drop(node);
    drop(ctd);
}

/// The image with kubectl in it.
const KUBECTL_IMAGE: &str = "korral-test/kubectl:1";

/// The machine's kubectl (a static Go binary), as `which kubectl` finds it.
fn host_kubectl() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl on PATH");
    std::fs::canonicalize(&found).expect("kubectl's real path")
}

/// A pod of `reader` that finds the API server with nothing but what the
/// node gave it: the `KUBERNETES_SERVICE_*` variables, and the token, CA
/// and namespace of its `kube-api-access` volume. It prints them, its
/// mount of the volume, who it is, and `kubectl get pods` with the
/// requests' URLs (`-v=6`).
fn in_cluster_pod(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  serviceAccountName: reader
  terminationGracePeriodSeconds: 1
  containers:
  - name: kubectl
    image: {KUBECTL_IMAGE}
    command:
    - sh
    - -c
    - |
      echo "service=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
      grep " {SA_DIR} " /proc/mounts | sed 's/^/mount: /'
      echo "namespace=$(cat {SA_DIR}/namespace)"
      echo "whoami=$(kubectl auth whoami -o jsonpath='{{.status.userInfo.username}}' 2>&1)"
      kubectl get pods -o name -v=6 2>&1 || true
"#
    )
}

/// The line of kubectl's `-v=6` log that answers a request to `url` ("" if none).
fn request_line<'a>(log: &'a str, url: &str) -> &'a str {
    log.lines()
        .filter(|l| l.contains(url))
        .find(|l| l.contains(" OK") || l.contains("Forbidden"))
        .unwrap_or("")
}

#[test]
fn an_in_cluster_kubectl_reaches_the_api_server_through_the_kubernetes_service() {
    let mut lab = Lab::new(1);
    let gw = lab.gateway();
    let s = Server::start_on(&format!("{gw}:0"), &[]);
    let ctd_dir = lab.dir.path().join("ctd");
    std::fs::create_dir_all(&ctd_dir).expect("dir");
    let name = format!("incluster-{}", std::process::id());
    let ctd = Containerd::start(&ctd_dir, &name);
    let kubectl = host_kubectl();
    ctd.import_busybox_with(
        KUBECTL_IMAGE,
        &[format!("{}:/usr/local/bin/kubectl", kubectl.display())],
    );

    // the containerd runtime runs the service proxy by default (iptables in the lab host's namespace)
    let data = ctd_dir.join("node-data");
    let node = start_containerd_node(
        &mut lab,
        &s,
        &ctd,
        0,
        &name,
        &data,
        &["--proxy-min-sync-period", "100ms"],
    );

    // the kubernetes Service fronts the address the API server listens on in the lab
    let cluster_ip = jsonpath(&s, "service", "kubernetes", "{.spec.clusterIP}");
    assert_eq!(cluster_ip, "10.96.0.1");
    let port = s.url.rsplit(':').next().expect("port").to_string();
    assert_eq!(
        jsonpath(
            &s,
            "endpoints",
            "kubernetes",
            "{.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}"
        ),
        format!("{gw}:{port}")
    );

    s.ok(&["create", "serviceaccount", "reader"]);
    wait_root_ca(&s);
    apply(&s, &in_cluster_pod("before"));
    let out = finished_log(&s, "before");
    assert!(
        out.contains(&format!("service={cluster_ip}:443\n")),
        "the variables name the kubernetes Service: {out}"
    );
    // a real read-only mount in the container's mount namespace
    let mount = out
        .lines()
        .find_map(|l| l.strip_prefix("mount: "))
        .unwrap_or_else(|| panic!("{SA_DIR} is not a mount point in the container: {out}"));
    let opts = mount.split_whitespace().nth(3).unwrap_or("");
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "the token volume is mounted read-only: {mount}"
    );
    assert!(out.contains("namespace=default\n"), "{out}");
    assert!(
        out.contains("Using in-cluster configuration"),
        "no kubeconfig: {out}"
    );
    assert!(
        out.contains("whoami=system:serviceaccount:default:reader\n"),
        "the token authenticates the pod's ServiceAccount: {out}"
    );
    // through the cluster IP, with kube's 403 text
    let pods_url = format!("https://{cluster_ip}:443/api/v1/namespaces/default/pods");
    assert!(
        request_line(&out, &pods_url).contains("403 Forbidden"),
        "kubectl asked {pods_url}: {out}"
    );
    assert!(out.contains(READER_CANNOT_LIST_PODS), "{out}");
    let_reader_list_pods(&s);
    apply(&s, &in_cluster_pod("after"));
    let out = finished_log(&s, "after");
    assert!(
        request_line(&out, &pods_url).contains("200 OK"),
        "kubectl asked {pods_url}: {out}"
    );
    assert!(
        out.contains("pod/before\n"),
        "the binding lets it list pods: {out}"
    );
    assert!(!out.contains("forbidden"), "{out}");
    drop(node);
    drop(ctd);
}
