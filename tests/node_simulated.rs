//! End to end: `korral node --simulate 20` registers twenty nodes from one
//! process, each heartbeating its own Lease; pods bound to them become
//! Running and Ready after the simulated start delay (their probes pass:
//! nothing runs to probe), and deleted pods go.

use crate::node_support;
use crate::support;

use std::time::Duration;

use node_support::jsonpath;
use support::simulated_nodes::SimulatedNodes;
use support::{Server, wait_for};

#[test]
fn simulated_nodes_register_heartbeat_and_run_pods() {
    let s = Server::start();
    let _nodes = SimulatedNodes::start(&s, "sim", 20);
    let leases = s.ok(&["get", "leases", "-n", "kube-node-lease", "-o", "name"]);
    assert_eq!(leases.lines().count(), 20, "{leases}");
    assert_eq!(
        jsonpath(
            &s,
            "node",
            "sim-7",
            "{.status.nodeInfo.containerRuntimeVersion}"
        )
        .split(':')
        .next(),
        Some("simulated")
    );
    let mut manifest = String::new();
    for i in 0..20 {
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n  nodeName: sim-{}\n  containers: [{{name: c, image: busybox, readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}}}]\n",
            i % 20
        ));
    }
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(&manifest));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("20 Ready pods", Duration::from_secs(60), || {
        s.ready_count("pods") == 20
    });
    let ip = jsonpath(&s, "pod", "p3", "{.status.podIP}");
    let cidr = jsonpath(&s, "node", "sim-3", "{.spec.podCIDR}");
    assert_eq!(
        ip.rsplit_once('.').map(|x| x.0),
        cidr.rsplit_once('.').map(|x| x.0),
        "pod IP {ip} in {cidr}"
    );
    s.ok(&["delete", "pod", "p0", "--wait=false"]);
    wait_for("p0 to be gone", Duration::from_secs(20), || {
        !s.kubectl(&["get", "pod", "p0"]).status.success()
    });
}
