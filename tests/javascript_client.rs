//! The official JavaScript client, @kubernetes/client-node, against a real
//! `korral server` (`tests/node/client_node_scenario.mjs`): version and
//! discovery, create/get/list with selectors and pages, watches from a
//! resourceVersion, resumed, with bookmarks, an informer, merge/JSON/
//! strategic patches, server-side apply, the scale subresource,
//! NotFound/AlreadyExists, deletion, and kube-apiserver's answers to patch
//! bodies that do not match their Content-Type. It runs once per client
//! version installed under `target/node` (`.ci/run` installs a pinned 1.x
//! and the newest release Node 20 runs) with the machine's `node`.

use crate::support;

use std::process::Command;

use support::{Server, stderr, stdout};

/// The client versions to run, as the npm aliases `.ci/run` installs.
const MODULES: &[&str] = &["client-node-pinned", "client-node-latest"];

#[test]
fn client_node_works_as_against_kube_apiserver() {
    let script = support::root().join("tests/node/client_node_scenario.mjs");
    for module in MODULES {
        let server = Server::start();
        let o = Command::new("node")
            .arg(&script)
            .arg(&server.kubeconfig)
            .arg(module)
            .output()
            .expect("run node");
        let out = stdout(&o);
        assert!(
            o.status.success(),
            "client_node_scenario.mjs with {module} failed:\nstdout:\n{out}\nstderr:\n{}\nserver log:\n{}",
            stderr(&o),
            server.log()
        );
        for check in [
            "version: ok",
            "discovery: ok",
            "create: ok",
            "get: ok",
            "list with label selector: ok",
            "list with limit and continue: ok",
            "watch from list resourceVersion: ok",
            "watch resumed from last resourceVersion: ok",
            "watch bookmarks: ok",
            "informer: ok",
            "merge patch: ok",
            "json patch: ok",
            "strategic merge patch: ok",
            "server-side apply: ok",
            "scale subresource: ok",
            "get missing is NotFound: ok",
            "create existing is AlreadyExists: ok",
            "delete: ok",
            "object body sent as a JSON patch is refused: ok",
            "list body sent as a merge patch is refused: ok",
            "list body sent as a strategic merge patch is refused: ok",
            "delete namespace: ok",
        ] {
            assert!(
                out.contains(check),
                "{module}: missing {check:?} in:\n{out}"
            );
        }
    }
}
