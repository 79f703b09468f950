//! Behaviours and answers compared with kube-apiserver 1.33's, through the
//! real kubectl and raw HTTP: updates defaulted before validation, field
//! validation modes, Secret stringData, protected namespaces, DELETE bodies,
//! Status bytes, metadata-only reads, YAML bodies, discovery hashes and
//! ETags, OpenAPI v2, and kubectl debug without ephemeral containers.

use crate::cluster;

use serde_json::{Value, json};

use cluster::{Cluster, repo_root, text};

fn fixture(name: &str) -> String {
    repo_root()
        .join("fixtures/parity")
        .join(name)
        .to_string_lossy()
        .to_string()
}

/// kubectl's own command-line tests (test-cmd) run kube-apiserver with the
/// ServiceAccount admission plugin off: with it, the token volume it adds
/// makes a replace with the manifest as created a forbidden pod update, on
/// kube-apiserver as here.
#[test]
fn a_pod_can_be_replaced_and_applied_again_as_created() {
    let c = Cluster::start_with(|config| {
        config.disabled_admission_plugins = vec!["ServiceAccount".into()];
    });
    let pod = fixture("pod.yaml");
    assert_eq!(c.ok(&["create", "-f", &pod]), "pod/netshoot created");
    // the volume without a source became an emptyDir
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "netshoot",
            "-o",
            "jsonpath={.spec.volumes[0].emptyDir}"
        ]),
        "{}"
    );
    assert_eq!(
        c.ok(&["replace", "--save-config", "-f", &pod]),
        "pod/netshoot replaced"
    );
    for _ in 0..2 {
        assert_eq!(
            c.ok(&["apply", "--server-side", "-f", &pod]),
            "pod/netshoot serverside-applied"
        );
    }
    // a pod read back without its defaults is still the same pod
    let mut live: Value =
        serde_json::from_str(&c.ok(&["get", "pod", "netshoot", "-o", "json"])).expect("json");
    if let Some(spec) = live["spec"].as_object_mut() {
        spec.remove("dnsPolicy");
        spec.remove("terminationGracePeriodSeconds");
    }
    let o = c.kubectl_in(&["replace", "-f", "-"], Some(&live.to_string()));
    assert!(o.status.success(), "{}", text(&o.stderr));
    // a real change to the spec is refused with kube's message
    let changed = text(&std::fs::read(&pod).expect("pod.yaml")).replace("sleep", "sh");
    let o = c.kubectl_in(&["replace", "-f", "-"], Some(&changed));
    assert!(
        text(&o.stderr)
            .contains("pod updates may not change fields other than `spec.containers[*].image`"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn unknown_fields_follow_the_requests_field_validation() {
    let c = Cluster::start();
    let file = fixture("deployment-unknown-fields.yaml");
    let err = c.fails(&["create", "--validate=strict", "-f", &file]);
    assert!(
        err.contains(r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica", unknown field "spec.template.spec.containers[0].imagePullPolicyy""#),
        "{err}"
    );
    let o = c.kubectl(&["create", "--validate=warn", "-f", &file]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(r#"Warning: unknown field "spec.replica""#),
        "{}",
        text(&o.stderr)
    );
    c.ok(&["delete", "deployment", "echo"]);
    assert_eq!(
        c.ok(&["create", "--validate=false", "-f", &file]),
        "deployment.apps/echo created"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "echo", "-o", "jsonpath={.spec.replicas}"]),
        "1"
    );

    // no directive at all (most clients): Warn, one Warning header per field
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
        "data": {"a": "1"}, "dta": {}, "metadata2": 1});
    let r = c.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &["Content-Type: application/json"],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.code, 201, "{}", text(&r.body));
    assert_eq!(
        r.header("Warning"),
        vec![
            r#"299 - "unknown field \"dta\"""#,
            r#"299 - "unknown field \"metadata2\"""#
        ]
    );
    assert!(r.json().get("dta").is_none());
}

#[test]
fn secrets_merge_string_data_and_accept_wrapped_base64() {
    let c = Cluster::start();
    c.ok(&["apply", "-f", &fixture("secret-stringdata.yaml")]);
    let data: Value = serde_json::from_str(&c.ok(&[
        "get",
        "secret",
        "api-credentials",
        "-o",
        "jsonpath={.data}",
    ]))
    .expect("data");
    assert_eq!(data, json!({"API_USER": "YWRtaW4=", "API_TOKEN": "djI="}));
    // line-wrapped base64, as `base64` without -w0 writes it
    let wrapped = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrapped"},
        "data": {"k": "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5emFi\nY2RlZg=="}});
    let o = c.kubectl_in(&["create", "-f", "-"], Some(&wrapped.to_string()));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        c.ok(&["get", "secret", "wrapped", "-o", "jsonpath={.data.k}"]),
        "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5emFiY2RlZg=="
    );
}

#[test]
fn system_namespaces_may_not_be_deleted() {
    let c = Cluster::start();
    for ns in ["default", "kube-system", "kube-public"] {
        let err = c.fails(&["delete", "namespace", ns]);
        assert!(
            err.contains(&format!(r#"Error from server (Forbidden): namespaces "{ns}" is forbidden: this namespace may not be deleted"#)),
            "{err}"
        );
    }
    assert_eq!(
        c.ok(&["get", "ns", "default", "-o", "jsonpath={.status.phase}"]),
        "Active"
    );
}

#[test]
fn delete_answers_the_object_or_a_status_as_the_kinds_registry_does() {
    let c = Cluster::start();
    c.ok(&["create", "-f", &fixture("pod.yaml")]);
    c.ok(&["create", "configmap", "settings", "--from-literal=a=1"]);
    let r = c.curl(
        "DELETE",
        "/api/v1/namespaces/default/pods/netshoot",
        &[],
        None,
    );
    assert_eq!(r.code, 200);
    let pod = r.json();
    assert_eq!(pod["kind"], "Pod");
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 0);
    let r = c.curl(
        "DELETE",
        "/api/v1/namespaces/default/configmaps/settings",
        &[],
        None,
    );
    assert_eq!(r.code, 200);
    let status = r.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Success");
    assert_eq!(
        status["details"],
        json!({"name": "settings", "kind": "configmaps", "uid": status["details"]["uid"]})
    );
}

#[test]
fn errors_are_status_objects_in_kubes_bytes() {
    let c = Cluster::start();
    let r = c.curl("GET", "/api/v1/namespaces/default/pods/nope", &[], None);
    assert_eq!(r.code, 404);
    assert_eq!(
        text(&r.body),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"nope\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"nope\",\"kind\":\"pods\"},\"code\":404}\n"
    );
    assert_eq!(r.header("Content-Type"), vec!["application/json"]);
    assert_eq!(r.header("Audit-Id").len(), 1, "{}", r.headers);
    c.ok(&["create", "configmap", "dup"]);
    let r = c.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &["Content-Type: application/json"],
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"}}"#),
    );
    assert_eq!(r.code, 409);
    assert_eq!(
        text(&r.body),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"configmaps \\\"dup\\\" already exists\",\"reason\":\"AlreadyExists\",\"details\":{\"name\":\"dup\",\"kind\":\"configmaps\"},\"code\":409}\n"
    );
}

#[test]
fn metadata_only_reads_and_yaml_bodies() {
    let c = Cluster::start();
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n  labels: {tier: web}\ndata:\n  mode: '0644'\n";
    let r = c.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &["Content-Type: application/yaml"],
        Some(yaml.as_bytes()),
    );
    assert_eq!(r.code, 201, "{}", text(&r.body));
    assert_eq!(r.json()["data"]["mode"], "0644");

    let accept = "Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let r = c.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[accept],
        None,
    );
    assert_eq!(r.code, 200);
    let list = r.json();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    let item = &list["items"][0];
    assert_eq!(item["kind"], "PartialObjectMetadata");
    assert_eq!(item["metadata"]["name"], "from-yaml");
    assert!(item.get("data").is_none(), "{item}");

    let accept = "Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    let r = c.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps/from-yaml",
        &[accept],
        None,
    );
    assert_eq!(r.json()["kind"], "PartialObjectMetadata");
    assert_eq!(r.json()["metadata"]["labels"]["tier"], "web");

    // a metadata watch sends PartialObjectMetadata objects
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    c.ok(&["create", "configmap", "later"]);
    let r = c.curl(
        "GET",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1"
        ),
        &["Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"],
        None,
    );
    let first: Value = serde_json::from_str(text(&r.body).lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {} {}", r.code, text(&r.body)));
    assert_eq!(first["type"], "ADDED", "{}", text(&r.body));
    assert_eq!(first["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(first["object"]["metadata"]["name"], "later");
}

#[test]
fn discovery_is_stable_with_hashes_and_etags_and_openapi_v2_is_complete() {
    let c = Cluster::start();
    let r = c.curl("GET", "/api/v1", &[], None);
    let pods = r.json()["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "pods").cloned())
        .expect("pods in /api/v1");
    assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
    let again = c.curl("GET", "/api/v1", &[], None);
    assert_eq!(r.body, again.body, "the same answer twice");

    let aggregated = "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let r = c.curl("GET", "/apis", &[aggregated], None);
    assert_eq!(r.code, 200);
    let etag = r.header("ETag").pop().expect("an ETag");
    let r = c.curl(
        "GET",
        "/apis",
        &[aggregated, &format!("If-None-Match: {etag}")],
        None,
    );
    assert_eq!(r.code, 304);

    let r = c.curl("GET", "/openapi/v2", &["Accept: application/json"], None);
    assert_eq!(r.code, 200);
    let doc = r.json();
    assert_eq!(doc["swagger"], "2.0");
    for def in [
        "io.k8s.api.core.v1.Pod",
        "io.k8s.api.apps.v1.Deployment",
        "io.k8s.api.batch.v1.CronJob",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    ] {
        assert!(
            doc["definitions"].get(def).is_some(),
            "{def} missing from /openapi/v2"
        );
    }
    let pod = &doc["definitions"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
}

#[test]
fn names_follow_apimachinery_rules() {
    let c = Cluster::start();
    // 60 characters: a Deployment's ReplicaSet name adds 11 more
    assert_eq!(
        c.ok(&["apply", "-f", &fixture("deployment-long-name.yaml")]),
        "deployment.apps/payments-reconciliation-worker-europe-west-primary-canary-ab created"
    );
    let long_rs = format!("{}-{}", "a".repeat(60), "5d8f7c9b6");
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": long_rs},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36.1"}]}}}});
    let o = c.kubectl_in(&["create", "-f", "-"], Some(&rs.to_string()));
    assert!(o.status.success(), "{}", text(&o.stderr));
    // a label-named kind keeps the 63-character limit, with apimachinery's message
    let err = c.fails(&["create", "namespace", &"n".repeat(64)]);
    assert!(err.contains("must be no more than 63 characters"), "{err}");
    let err = c.fails(&["create", "configmap", "Bad_Name"]);
    assert!(
        err.contains("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
        "{err}"
    );
}

#[test]
fn kubectl_debug_fails_cleanly_without_ephemeral_containers() {
    let c = Cluster::start();
    c.ok(&["create", "-f", &fixture("pod.yaml")]);
    let o = c.kubectl(&[
        "debug",
        "netshoot",
        "--image=busybox:1.36.1",
        "--attach=false",
    ]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(!err.contains("panic"), "{err}");
    assert!(
        err.contains("ephemeral containers are disabled for this cluster"),
        "{err}"
    );
}

#[test]
fn client_certificates_signed_by_the_cluster_ca_authenticate() {
    let c = Cluster::start();
    let (server, _) = c.endpoint();
    let pki = c.dir.path().join("data/pki");
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).expect("pki file");
    let kubeconfig = c.dir.path().join("cert.kubeconfig");
    apiserver::kubeconfig::write_as(
        &kubeconfig,
        &server,
        &read("ca.crt"),
        "korral-admin",
        apiserver::kubeconfig::Credentials::ClientCert {
            cert_pem: &read("admin.crt"),
            key_pem: &read("admin.key"),
        },
    )
    .expect("kubeconfig");
    let kc = kubeconfig.to_string_lossy().to_string();
    let who = c.ok(&[
        "--kubeconfig",
        &kc,
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(who, "korral-admin");
    assert_eq!(
        c.ok(&["--kubeconfig", &kc, "get", "ns", "default", "-o", "name"]),
        "namespace/default"
    );
    // the CA also signs the API server's client certificate for node daemons:
    // like any certificate the CA signed it authenticates (as its CN), and
    // RBAC grants that user nothing beyond asking what it may do
    let curl = |cert: &str, key: &str| {
        let o = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(pki.join("ca.crt"))
            .arg("--cert")
            .arg(pki.join(cert))
            .arg("--key")
            .arg(pki.join(key))
            .arg(format!("{server}/api/v1/namespaces"))
            .output()
            .expect("curl");
        text(&o.stdout)
    };
    assert_eq!(curl("admin.crt", "admin.key"), "200");
    assert_eq!(curl("kubelet-client.crt", "kubelet-client.key"), "403");
}

#[test]
fn every_write_records_its_field_manager() {
    let c = Cluster::start();
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1",
        "labels": {"kubernetes.io/hostname": "worker-1"}}, "spec": {"podCIDR": "10.244.1.0/24"}});
    let o = c.kubectl_in(&["create", "-f", "-"], Some(&node.to_string()));
    assert!(o.status.success(), "{}", text(&o.stderr));
    c.ok(&[
        "label",
        "node",
        "worker-1",
        "topology.kubernetes.io/zone=eu-west-1a",
    ]);
    c.ok(&["taint", "node", "worker-1", "dedicated=ingress:NoSchedule"]);
    c.ok(&["annotate", "node", "worker-1", "owner=platform"]);
    let managers = c.ok(&[
        "get",
        "node",
        "worker-1",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation} {end}",
    ]);
    // (kube sorts entries by operation, then time in seconds, then manager)
    let mut managers: Vec<&str> = managers.split_whitespace().collect();
    managers.sort();
    assert_eq!(
        managers,
        [
            "kubectl-annotate/Update",
            "kubectl-create/Update",
            "kubectl-label/Update",
            "kubectl-taint/Update"
        ]
    );
}

#[test]
fn root_paths_and_health_checks_answer_as_kube_apiserver_does() {
    let c = Cluster::start();
    for path in ["/version", "/version/", "/api", "/api/", "/apis", "/apis/"] {
        let r = c.curl("GET", path, &[], None);
        assert_eq!(r.code, 200, "{path}: {}", text(&r.body));
    }
    assert_eq!(c.curl("GET", "/version/", &[], None).json()["major"], "1");
    assert_eq!(
        c.curl("GET", "/api/", &[], None).json()["kind"],
        "APIVersions"
    );
    for path in [
        "/healthz",
        "/livez",
        "/readyz",
        "/livez/ping",
        "/readyz/etcd",
        "/healthz/log",
    ] {
        let r = c.curl("GET", path, &[], None);
        assert_eq!((r.code, text(&r.body)), (200, "ok".to_string()), "{path}");
    }
    let r = c.curl("GET", "/readyz?verbose", &[], None);
    assert_eq!(
        text(&r.body),
        "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]informer-sync ok\n[+]shutdown ok\nreadyz check passed\n"
    );
    let r = c.curl("GET", "/livez?verbose&exclude=etcd", &[], None);
    assert!(
        text(&r.body).contains("[+]etcd excluded: ok"),
        "{}",
        text(&r.body)
    );
    assert_eq!(c.curl("GET", "/livez/nope", &[], None).code, 404);
}
