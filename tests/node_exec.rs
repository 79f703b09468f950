//! End to end with real containerd + runc (root), kubectl through `korral
//! server` and a `korral node`: `kubectl exec -i` streams like the kubelet
//! (the command starts while stdin is still open, typed input is echoed
//! live, stdin's end is the command's EOF, a command that does not read
//! stdin ends the session anyway), `kubectl cp` into and out of a pod still
//! works, `kubectl attach -i` feeds a container's stdin (`stdin: true`,
//! `stdinOnce`), `kubectl exec -it` and `kubectl run -it --rm` get
//! terminals, and a graceful delete shows the pod `Ready=False` with its
//! container terminated before the pod goes. The test starts its own
//! containerd and removes everything it ran, even when it fails.

use crate::node_support;
use crate::support;

use std::time::Duration;

use node_support::containerd::Containerd;
use node_support::{
    NodeProc, apply, check_attach_stdin, check_cp, check_graceful_delete_reports_not_ready,
    check_streaming_exec, check_terminals, wait_node, wait_ready,
};
use support::Server;

/// A pod whose shell ignores SIGTERM: a delete runs its whole grace period.
fn pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "trap '' TERM; echo ok > /tmp/ready; while true; do sleep 1; done"]
    readinessProbe: {{exec: {{command: ["cat", "/tmp/ready"]}}, periodSeconds: 1}}
"#
    )
}

#[test]
fn containerd_exec_streams_stdin_and_deletion_reports_not_ready() {
    let s = Server::start();
    let node_name = format!("exec-{}", std::process::id());
    let ctd_dir = s.dir.path().join("ctd");
    std::fs::create_dir_all(&ctd_dir).expect("dir");
    let ctd = Containerd::start(&ctd_dir, &node_name);
    ctd.import_busybox("busybox:1.36");

    let kc = s.kubeconfig_for(&format!("node:{node_name}"));
    let data = ctd_dir.join("node-data");
    let args: Vec<String> = [
        "--kubeconfig",
        &kc.to_string_lossy(),
        "--name",
        &node_name,
        "--runtime",
        "containerd",
        "--proxy-mode",
        "none",
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
        // the test's image stays, however full the machine's disk is
        "--image-gc-high-threshold",
        "100",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut node = NodeProc::start(&data, &s.dir.path().join("node.log"), &args);
    wait_node(&s, &node, &node_name);

    apply(&s, &pod("shell", &node_name));
    wait_ready(&s, &node, "shell", Duration::from_secs(90));

    check_streaming_exec(&s, "shell", &[]);
    check_cp(&s, "shell", "/tmp");
    check_attach_stdin(&s, &mut node, &node_name, &[]);
    check_terminals(&s, &node, &node_name, "reader", &["sh"], "busybox:1.36");
    check_graceful_delete_reports_not_ready(&s, &node, "shell");

    drop(node);
    drop(ctd);
}
