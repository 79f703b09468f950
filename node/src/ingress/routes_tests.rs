//! Routing precedence: hosts, wildcards, paths, default backends, classes,
//! readiness, conflicts and certificates.

use super::*;
use serde_json::json;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("object"))
}

fn class(name: &str, controller: &str, default: bool) -> Arc<IngressClass> {
    obj(
        json!({"metadata": {"name": name, "annotations": {ANN_DEFAULT_CLASS: default.to_string()}},
        "spec": {"controller": controller}}),
    )
}

/// A Service `name` with port 80 (`http`) and 8443 (`https`), and its Endpoints:
/// `ready` addresses and `not_ready` ones.
fn service(name: &str, ready: &[&str], not_ready: &[&str]) -> (Arc<Service>, Arc<Endpoints>) {
    let addrs = |l: &[&str]| l.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>();
    (
        obj(json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                               {"name": "https", "port": 8443}]}})),
        obj(json!({"metadata": {"name": name, "namespace": "default"},
            "subsets": [{"addresses": addrs(ready), "notReadyAddresses": addrs(not_ready),
                "ports": [{"name": "http", "port": 8080}, {"name": "https", "port": 9443}]}]})),
    )
}

fn backend(svc: &str) -> serde_json::Value {
    json!({"service": {"name": svc, "port": {"number": 80}}})
}

fn ingress(name: &str, created: &str, spec: serde_json::Value) -> Arc<Ingress> {
    obj(
        json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": spec}),
    )
}

struct World {
    classes: Vec<Arc<IngressClass>>,
    services: Vec<Arc<Service>>,
    endpoints: Vec<Arc<Endpoints>>,
}

fn world() -> World {
    let mut w = World {
        classes: vec![
            class(CLASS, CONTROLLER, true),
            class("nginx", "k8s.io/ingress-nginx", false),
        ],
        services: Vec::new(),
        endpoints: Vec::new(),
    };
    for (i, name) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        let (s, e) = service(name, &[&format!("10.0.0.{}", i + 1)], &[]);
        w.services.push(s);
        w.endpoints.push(e);
    }
    w
}

fn table(w: &World, ings: &[Arc<Ingress>]) -> Table {
    build(ings, &w.classes, &w.services, &w.endpoints, &[])
}

fn goes_to(t: &Table, host: &str, path: &str) -> String {
    match t.route(host, path) {
        Route::Backend(u) => u.name.split(['/', ':']).nth(1).unwrap_or("").to_string(),
        Route::NotFound => "404".into(),
    }
}

fn path(p: &str, kind: &str, svc: &str) -> serde_json::Value {
    json!({"path": p, "pathType": kind, "backend": backend(svc)})
}

#[test]
fn paths_longest_first_exact_before_prefix_element_wise() {
    let w = world();
    let t = table(
        &w,
        &[ingress(
            "web",
            "2026-01-01T00:00:00Z",
            json!({"rules": [{"host": "foo.example", "http": {"paths": [
                path("/", "Prefix", "a"),
                path("/api", "Prefix", "b"),
                path("/api/v2/", "Prefix", "c"),
                path("/api", "Exact", "d"),
                path("/static", "ImplementationSpecific", "e"),
            ]}}]}),
        )],
    );
    let cases = [
        ("/", "a"),
        ("/index.html", "a"),
        ("/api", "d"),
        ("/api/", "b"),
        ("/api/users", "b"),
        ("/apiary", "a"),
        ("/api/v2", "c"),
        ("/api/v2/x", "c"),
        ("/api/v2x", "b"),
        ("/static/app.js", "e"),
        ("/staticky", "a"),
    ];
    for (p, want) in cases {
        assert_eq!(goes_to(&t, "foo.example", p), want, "path {p}");
    }
    // the Host header's port and case do not matter
    assert_eq!(goes_to(&t, "FOO.example:8080", "/api/x"), "b");
}

#[test]
fn hosts_exact_then_wildcard_of_one_label_then_hostless() {
    let w = world();
    let t = table(
        &w,
        &[ingress(
            "hosts",
            "2026-01-01T00:00:00Z",
            json!({"rules": [
                {"host": "foo.example", "http": {"paths": [path("/", "Prefix", "a")]}},
                {"host": "*.example", "http": {"paths": [path("/", "Prefix", "b")]}},
                {"http": {"paths": [path("/only-here", "Prefix", "c")]}},
            ]}),
        )],
    );
    assert_eq!(goes_to(&t, "foo.example", "/x"), "a");
    assert_eq!(goes_to(&t, "bar.example", "/x"), "b");
    // a wildcard covers exactly one label
    assert_eq!(goes_to(&t, "a.bar.example", "/only-here"), "c");
    assert_eq!(goes_to(&t, "example", "/only-here"), "c");
    // a host's rules do not fall through to the rules without a host
    assert_eq!(goes_to(&t, "foo.example", "/only-here"), "a");
    assert_eq!(goes_to(&t, "other.test", "/elsewhere"), "404");
}

#[test]
fn default_backends_per_host_then_global() {
    let w = world();
    let t = table(
        &w,
        &[
            ingress(
                "first",
                "2026-01-01T00:00:00Z",
                json!({"defaultBackend": backend("a"),
                    "rules": [{"host": "one.example", "http": {"paths": [path("/app", "Prefix", "b")]}}]}),
            ),
            ingress(
                "second",
                "2026-01-02T00:00:00Z",
                json!({"defaultBackend": backend("c"),
                    "rules": [{"host": "two.example", "http": {"paths": [path("/app", "Prefix", "d")]}}]}),
            ),
        ],
    );
    assert_eq!(goes_to(&t, "one.example", "/app/x"), "b");
    assert_eq!(goes_to(&t, "one.example", "/other"), "a");
    assert_eq!(goes_to(&t, "two.example", "/other"), "c");
    // the oldest Ingress's default backend catches everything else
    assert_eq!(goes_to(&t, "three.example", "/"), "a");
}

#[test]
fn the_older_ingress_wins_a_conflict() {
    let w = world();
    let spec = |svc: &str| json!({"rules": [{"host": "x.example", "http": {"paths": [path("/", "Prefix", svc)]}}]});
    let t = table(
        &w,
        &[
            ingress("newer", "2026-02-01T00:00:00Z", spec("b")),
            ingress("older", "2026-01-01T00:00:00Z", spec("a")),
        ],
    );
    assert_eq!(goes_to(&t, "x.example", "/"), "a");
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    assert_eq!(
        t.ingresses,
        vec![
            ("default".to_string(), "older".to_string()),
            ("default".to_string(), "newer".to_string())
        ]
    );
}

#[test]
fn classes_decide_which_ingresses_are_served() {
    let mut w = world();
    let spec = |class: Option<&str>, host: &str| {
        let mut s =
            json!({"rules": [{"host": host, "http": {"paths": [path("/", "Prefix", "a")]}}]});
        if let Some(c) = class {
            s["ingressClassName"] = json!(c);
        }
        s
    };
    let at = "2026-01-01T00:00:00Z";
    let mut legacy = (*ingress("legacy", at, spec(None, "legacy.example"))).clone();
    legacy
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(ANN_LEGACY_CLASS.into(), CLASS.into());
    let ings = vec![
        ingress("ours", at, spec(Some(CLASS), "ours.example")),
        ingress("theirs", at, spec(Some("nginx"), "theirs.example")),
        ingress("classless", at, spec(None, "classless.example")),
        Arc::new(legacy),
    ];
    let t = table(&w, &ings);
    assert_eq!(goes_to(&t, "ours.example", "/"), "a");
    assert_eq!(goes_to(&t, "theirs.example", "/"), "404");
    assert_eq!(goes_to(&t, "classless.example", "/"), "a");
    assert_eq!(goes_to(&t, "legacy.example", "/"), "a");
    // when another class is the default, Ingresses without a class are not ours
    w.classes = vec![
        class(CLASS, CONTROLLER, false),
        class("nginx", "k8s.io/ingress-nginx", true),
    ];
    let t = table(&w, &ings);
    assert_eq!(goes_to(&t, "classless.example", "/"), "404");
    assert_eq!(goes_to(&t, "ours.example", "/"), "a");
}

#[test]
fn only_ready_endpoints_in_turn_by_port_number_or_name() {
    let mut w = world();
    let (s, e) = service("web", &["10.1.0.1", "10.1.0.2"], &["10.1.0.3"]);
    w.services.push(s);
    w.endpoints.push(e);
    let t = table(
        &w,
        &[ingress(
            "web",
            "2026-01-01T00:00:00Z",
            json!({"rules": [{"host": "web.example", "http": {"paths": [
                path("/", "Prefix", "web"),
                {"path": "/tls", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"name": "https"}}}},
                {"path": "/gone", "pathType": "Prefix",
                 "backend": {"service": {"name": "missing", "port": {"number": 80}}}},
            ]}}]}),
        )],
    );
    let Route::Backend(u) = t.route("web.example", "/") else {
        panic!("no route")
    };
    let picks: Vec<String> = (0..4)
        .filter_map(|_| u.pick())
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        picks,
        [
            "10.1.0.1:8080",
            "10.1.0.2:8080",
            "10.1.0.1:8080",
            "10.1.0.2:8080"
        ]
    );
    let Route::Backend(u) = t.route("web.example", "/tls/x") else {
        panic!("no route")
    };
    assert_eq!(u.addrs.len(), 2);
    assert!(u.addrs.iter().all(|a| a.port() == 9443), "{:?}", u.addrs);
    let Route::Backend(u) = t.route("web.example", "/gone") else {
        panic!("no route")
    };
    assert!(u.pick().is_none(), "a missing Service has no endpoints");
    assert!(
        t.warnings.iter().any(|w| w.contains("default/missing")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn certificates_by_host_and_wildcard() {
    let w = world();
    let make = |name: &str| {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("cert");
        let b64 = |s: String| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        obj::<Secret>(
            json!({"metadata": {"name": name.replace('*', "star"), "namespace": "default"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(c.cert.pem()), "tls.key": b64(c.signing_key.serialize_pem())}}),
        )
    };
    let secrets = vec![make("foo.example"), make("*.wild.example")];
    let ing = ingress(
        "tls",
        "2026-01-01T00:00:00Z",
        json!({"tls": [{"hosts": ["foo.example"], "secretName": "foo.example"},
                       {"hosts": ["*.wild.example"], "secretName": "star.wild.example"},
                       {"hosts": ["nosecret.example"], "secretName": "absent"}],
               "rules": [{"host": "foo.example", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    );
    let t = build(&[ing], &w.classes, &w.services, &w.endpoints, &secrets);
    let first = |k: Option<Arc<CertifiedKey>>| k.map(|k| k.cert[0].to_vec());
    let foo = first(t.cert("foo.example"));
    assert!(foo.is_some());
    assert_ne!(foo, first(t.cert("a.wild.example")));
    assert!(t.cert("a.wild.example").is_some());
    assert!(t.cert("a.b.wild.example").is_none());
    assert!(t.cert("nosecret.example").is_none());
    assert!(
        t.warnings.iter().any(|w| w.contains("default/absent")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn status_adds_the_nodes_address_once() {
    let ing = ingress("web", "2026-01-01T00:00:00Z", json!({}));
    let patch = status_with(&ing, "127.0.0.1").expect("a patch");
    assert_eq!(
        patch,
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}})
    );
    let mut with = (*ing).clone();
    with.status = serde_json::from_value(patch["status"].clone()).expect("status");
    assert_eq!(status_with(&with, "127.0.0.1"), None);
    let both = status_with(&with, "10.0.0.7").expect("a patch");
    assert_eq!(
        both["status"]["loadBalancer"]["ingress"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
