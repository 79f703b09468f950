//! The official Kubernetes Python client (`pip install kubernetes`) against a
//! real `korral server`: create, list by label, watch in order, delete.

mod support;

use std::process::Command;

#[test]
fn python_client_creates_lists_and_watches() {
    let server = support::Server::start();
    let script = support::root().join("tests/python/client_scenario.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(&server.kubeconfig)
        .output()
        .expect("run python3");
    let out = support::stdout(&o);
    assert!(
        o.status.success(),
        "python client scenario failed:\nstdout:\n{out}\nstderr:\n{}\nserver log:\n{}",
        support::stderr(&o),
        server.log()
    );
    for check in [
        "create deployment: ok",
        "list pods by label: ok",
        "watch: ok",
        "delete deployment: ok",
    ] {
        assert!(out.contains(check), "missing {check:?} in:\n{out}");
    }
}
