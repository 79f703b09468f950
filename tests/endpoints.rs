//! The endpoints controller end to end: a Service's Endpoints follow its
//! pods as they get IPs, become ready and not ready, and go away; named
//! target ports resolve per pod; `publishNotReadyAddresses` lists every
//! address as ready; Endpoints of a Service without a selector are left
//! as written, and a deleted Service's Endpoints go with it.

use crate::sim;
use crate::support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Endpoints;
use schemas::MetaExt;
use sim::Sim;
use support::{Server, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn apply(s: &Server, yaml: &str) {
    let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        o.status.success(),
        "kubectl apply failed: {}\n{}",
        support::stderr(&o),
        s.log()
    );
}

fn endpoints(sim: &Sim, name: &str) -> Option<Endpoints> {
    sim.block(sim.client.api::<Endpoints>(Some("default")).get_opt(name))
        .expect("get endpoints")
}

/// (ready "ip:port" list, not-ready ip list), sorted.
fn addresses(sim: &Sim, name: &str) -> (Vec<String>, Vec<String>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for sub in endpoints(sim, name)
        .and_then(|e| e.subsets)
        .unwrap_or_default()
    {
        let port = sub
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .map(|p| p.port)
            .unwrap_or(0);
        for a in sub.addresses.iter().flatten() {
            ready.push(format!("{}:{port}", a.ip));
        }
        for a in sub.not_ready_addresses.iter().flatten() {
            not_ready.push(a.ip.clone());
        }
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

fn pod(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: web}}\nspec:\n  nodeName: n1\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox\n    ports: [{{name: http, containerPort: {port}}}]\n---\n"
    )
}

#[test]
fn endpoints_follow_pods_as_they_become_ready_and_not_ready() {
    let s = Server::start_with(&["--controllers", "endpoints"]);
    let sim = Sim::new(&s.kubeconfig);
    apply(
        &s,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {team: a}}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web-all}\nspec:\n  publishNotReadyAddresses: true\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: external}\nspec:\n  ports: [{port: 5432}]\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata: {name: external}\nsubsets: [{addresses: [{ip: 192.0.2.10}], ports: [{port: 5432}]}]\n",
    );
    // a selector with no ready pods still gets its (empty) Endpoints
    wait_for("Endpoints for web", WAIT, || {
        endpoints(&sim, "web").is_some()
    });
    let manual_rv = endpoints(&sim, "external").and_then(|e| e.metadata.resource_version);
    let kubernetes_rv = endpoints(&sim, "kubernetes").and_then(|e| e.metadata.resource_version);
    assert!(
        kubernetes_rv.is_some(),
        "the API server writes the kubernetes Endpoints"
    );

    apply(&s, &[pod("a", 8080), pod("b", 9090)].concat());
    sim.pod_status("default", "a", "10.244.0.11", false);
    wait_for("a as not ready", WAIT, || {
        addresses(&sim, "web") == (vec![], vec!["10.244.0.11".into()])
    });
    let ep = endpoints(&sim, "web").expect("endpoints");
    let a = &ep.subsets.as_ref().expect("subsets")[0]
        .not_ready_addresses
        .as_ref()
        .expect("addresses")[0];
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    let target = a.target_ref.as_ref().expect("targetRef");
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref()),
        (Some("Pod"), Some("a"))
    );
    assert_eq!(
        ep.metadata.labels_map().get("team").map(String::as_str),
        Some("a")
    );

    sim.pod_status("default", "a", "10.244.0.11", true);
    sim.pod_status("default", "b", "10.244.0.12", true);
    // the named port resolves per pod: 8080 on a, 9090 on b
    wait_for("both ready", WAIT, || {
        addresses(&sim, "web")
            == (
                vec!["10.244.0.11:8080".into(), "10.244.0.12:9090".into()],
                vec![],
            )
    });
    let get = s.ok(&["get", "endpoints", "web"]);
    assert!(
        get.contains("10.244.0.11:8080") && get.contains("10.244.0.12:9090"),
        "{get}"
    );

    sim.pod_status("default", "b", "10.244.0.12", false);
    wait_for("b not ready again", WAIT, || {
        addresses(&sim, "web") == (vec!["10.244.0.11:8080".into()], vec!["10.244.0.12".into()])
    });
    // publishNotReadyAddresses lists b as ready regardless
    wait_for("web-all to list both", WAIT, || {
        addresses(&sim, "web-all").0
            == vec![
                "10.244.0.11:8080".to_string(),
                "10.244.0.12:8080".to_string(),
            ]
    });

    s.ok(&["delete", "pod", "a"]);
    wait_for("a gone", WAIT, || {
        addresses(&sim, "web") == (vec![], vec!["10.244.0.12".into()])
    });

    // a service without a selector keeps its hand-written Endpoints
    assert_eq!(
        endpoints(&sim, "external").and_then(|e| e.metadata.resource_version),
        manual_rv
    );
    assert_eq!(
        endpoints(&sim, "kubernetes").and_then(|e| e.metadata.resource_version),
        kubernetes_rv
    );

    // deleting the service deletes its Endpoints
    s.ok(&["delete", "service", "web"]);
    wait_for("web's Endpoints to go", WAIT, || {
        endpoints(&sim, "web").is_none()
    });
    assert!(endpoints(&sim, "external").is_some());
}
