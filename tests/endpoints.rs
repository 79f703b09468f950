//! The endpoints controller end to end: a Service's Endpoints follow its
//! pods as they get IPs, become ready and not ready, and go away; named
//! target ports resolve per pod; `publishNotReadyAddresses` lists every
//! address as ready; Endpoints of a Service without a selector are left
//! as written, and a deleted Service's Endpoints go with it. The
//! EndpointSlice controller likewise: a placeholder slice, then one slice
//! per port set with ready/serving/terminating conditions, node, zone and
//! target, the `kubernetes` Service's slice the API server writes, `kubectl
//! get endpointslices`, and slices collected with their Service.

use crate::sim;
use crate::support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use reconcilers::runtime::ListParams;
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

/// The EndpointSlices of a Service, by name.
fn slices(sim: &Sim, service: &str) -> Vec<EndpointSlice> {
    sim.block(
        sim.client
            .api::<EndpointSlice>(Some("default"))
            .list(&ListParams {
                label_selector: Some(format!("kubernetes.io/service-name={service}")),
                ..Default::default()
            }),
    )
    .map(|l| l.items)
    .unwrap_or_default()
}

/// Per slice: (port, every endpoint as "ip ready serving terminating"), sorted.
fn slice_view(sim: &Sim, service: &str) -> Vec<(i32, Vec<String>)> {
    let mut out: Vec<(i32, Vec<String>)> = slices(sim, service)
        .iter()
        .map(|s| {
            let port = s
                .ports
                .as_ref()
                .and_then(|p| p.first())
                .and_then(|p| p.port)
                .unwrap_or(0);
            let mut eps: Vec<String> = s
                .endpoints
                .iter()
                .map(|e| {
                    let c = e.conditions.clone().unwrap_or_default();
                    format!(
                        "{} {} {} {}",
                        e.addresses.join(","),
                        c.ready == Some(true),
                        c.serving == Some(true),
                        c.terminating == Some(true)
                    )
                })
                .collect();
            eps.sort();
            (port, eps)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn endpoint_slices_follow_pods_with_kube_conditions() {
    let s = Server::start_with(&["--controllers", "endpointslice,garbage-collector"]);
    let sim = Sim::new(&s.kubeconfig);
    sim.node(
        "n1",
        "4",
        "8Gi",
        110,
        serde_json::json!({"topology.kubernetes.io/zone": "zone-a"}),
        serde_json::json!({}),
    );
    apply(
        &s,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {team: a}}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n",
    );
    // no pod yet: one placeholder slice, without endpoints or ports
    wait_for("the placeholder slice", WAIT, || {
        slice_view(&sim, "web") == vec![(0, vec![])]
    });
    let placeholder = slices(&sim, "web").remove(0);
    let name = placeholder.metadata.name.clone().unwrap_or_default();
    assert!(
        name.starts_with("web-") && name.len() == "web-".len() + 5,
        "generated name: {name}"
    );
    let labels = placeholder.metadata.labels_map();
    assert_eq!(
        labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    let owner = &placeholder
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "web")
    );
    assert_eq!(placeholder.address_type, "IPv4");

    let held = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n  labels: {app: web}\n  finalizers: [example.com/hold]\nspec:\n  nodeName: n1\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox\n    ports: [{name: http, containerPort: 8080}]\n";
    apply(
        &s,
        &[pod("a", 8080), pod("b", 9090), held.to_string()].concat(),
    );
    sim.pod_status("default", "a", "10.244.0.11", true);
    sim.pod_status("default", "b", "10.244.0.12", false);
    sim.pod_status("default", "c", "10.244.0.13", true);
    // one slice per port set: the named port is 8080 on a and c, 9090 on b
    wait_for("slices per port set", WAIT, || {
        slice_view(&sim, "web")
            == vec![
                (
                    8080,
                    vec![
                        "10.244.0.11 true true false".into(),
                        "10.244.0.13 true true false".into(),
                    ],
                ),
                (9090, vec!["10.244.0.12 false false false".into()]),
            ]
    });
    let all = slices(&sim, "web");
    let e = all
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .find(|e| e.addresses == ["10.244.0.11"])
        .expect("a's endpoint");
    assert_eq!(e.node_name.as_deref(), Some("n1"));
    assert_eq!(e.zone.as_deref(), Some("zone-a"));
    let target = e.target_ref.as_ref().expect("targetRef");
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref()),
        (Some("Pod"), Some("a"))
    );

    // a terminating pod stays, serving but neither ready nor counted as such
    s.ok(&["delete", "pod", "c", "--wait=false"]);
    wait_for("c terminating", WAIT, || {
        slice_view(&sim, "web")[0]
            .1
            .contains(&"10.244.0.13 false true true".to_string())
    });
    s.ok(&[
        "patch",
        "pod",
        "c",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_for("c gone", WAIT, || {
        slice_view(&sim, "web")[0].1 == vec!["10.244.0.11 true true false".to_string()]
    });

    // kube-apiserver's own slice for the kubernetes Service: no managed-by
    let k = slices(&sim, "kubernetes");
    assert_eq!(k.len(), 1, "{k:?}");
    assert_eq!(k[0].metadata.name.as_deref(), Some("kubernetes"));
    assert!(
        !k[0]
            .metadata
            .labels_map()
            .contains_key("endpointslice.kubernetes.io/managed-by")
    );
    assert_eq!(
        k[0].endpoints[0].conditions.as_ref().and_then(|c| c.ready),
        Some(true)
    );
    let get = s.ok(&["get", "endpointslices"]);
    println!("kubectl get endpointslices:\n{get}");
    assert!(get.contains("ADDRESSTYPE"), "{get}");
    assert!(get.contains("kubernetes "), "{get}");
    assert!(get.contains("10.244.0.11"), "{get}");
    assert!(get.contains("10.244.0.12"), "{get}");

    // the slices go with their Service
    s.ok(&["delete", "service", "web"]);
    wait_for("web's slices to go", WAIT, || {
        slices(&sim, "web").is_empty()
    });
}
