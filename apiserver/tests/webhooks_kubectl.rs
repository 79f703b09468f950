//! Admission webhooks through the real kubectl, against a webhook server
//! written in Python (`webhook_server.py`: HTTPS with its own CA,
//! AdmissionReview v1): a validating webhook called by URL refuses pods
//! labelled deny=true and deletes of protected ConfigMaps with kube's
//! "admission webhook ... denied the request" text; a mutating webhook
//! reached through a Service and its Endpoints (verified as
//! `webhook.default.svc`) adds a label, warns, and is skipped by its object
//! selector; validating webhooks see what mutating ones did; a dry run
//! reaches webhooks with `dryRun: true`; a webhook that is down refuses
//! with failurePolicy Fail and is passed over with Ignore.

use crate::cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine;
use cluster::{Cluster, text};
use serde_json::Value;

/// The webhook server, stopped when dropped.
struct WebhookServer {
    child: Child,
    port: u16,
    log: PathBuf,
    ca_pem: String,
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl WebhookServer {
    /// The reviews received so far, one JSON object each.
    fn reviews(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
}

/// A CA and a serving certificate for `webhook.default.svc` and 127.0.0.1,
/// then the server on a free loopback port.
fn start_webhook_server(c: &Cluster) -> WebhookServer {
    let dir = c.dir.path().join("webhook");
    std::fs::create_dir_all(&dir).expect("webhook dir");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=webhook-ca",
                "-days",
                "1",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &dir,
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=webhook.default.svc",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:webhook.default.svc,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhook_server.py");
    let port_file = dir.join("port");
    let log = dir.join("reviews.jsonl");
    let child = Command::new("python3")
        .arg(&script)
        .arg(dir.join("server.crt"))
        .arg(dir.join("server.key"))
        .arg(&log)
        .arg(&port_file)
        .spawn()
        .expect("run python3");
    let mut server = WebhookServer {
        child,
        port: 0,
        log,
        ca_pem: std::fs::read_to_string(dir.join("ca.crt")).expect("CA"),
    };
    c.wait_for("the webhook server's port", Duration::from_secs(20), || {
        std::fs::read_to_string(&port_file).is_ok_and(|p| p.trim().parse::<u16>().is_ok())
    });
    server.port = std::fs::read_to_string(&port_file)
        .expect("port file")
        .trim()
        .parse()
        .expect("port");
    server
}

fn apply(c: &Cluster, yaml: &str) {
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(yaml));
    assert!(
        o.status.success(),
        "kubectl apply failed:\n{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

fn labels(c: &Cluster, kind: &str, name: &str) -> Value {
    let out = c.ok(&["get", kind, name, "-o", "jsonpath={.metadata.labels}"]);
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

#[test]
fn webhooks_refuse_mutate_and_follow_their_failure_policy() {
    let c = Cluster::start();
    let hook = start_webhook_server(&c);
    let port = hook.port;
    let ca = hook.ca_bundle();
    // the mutating webhook is reached through a Service with hand-made
    // Endpoints (no controllers run here), as an operator's webhook Service
    // in front of its pod
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Service
metadata:
  name: webhook
  namespace: default
spec:
  ports:
  - name: https
    port: 443
    targetPort: {port}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: webhook
  namespace: default
subsets:
- addresses:
  - ip: 127.0.0.1
  ports:
  - name: https
    port: {port}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: inject-labels
webhooks:
- name: inject.korral.test
  admissionReviewVersions: ["v1"]
  sideEffects: NoneOnDryRun
  reinvocationPolicy: IfNeeded
  clientConfig:
    service:
      namespace: default
      name: webhook
      path: /inject
    caBundle: {ca}
  rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE"]
    resources: ["pods"]
  objectSelector:
    matchExpressions:
    - key: skip-injection
      operator: DoesNotExist
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: deny-labelled
webhooks:
- name: deny.korral.test
  admissionReviewVersions: ["v1", "v1beta1"]
  sideEffects: None
  timeoutSeconds: 5
  clientConfig:
    url: https://127.0.0.1:{port}/deny
    caBundle: {ca}
  rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE", "DELETE"]
    resources: ["pods", "configmaps"]
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: ["kube-system"]
"#
        ),
    );
    // the configurations reach admission through a watch
    c.wait_for(
        "the webhooks to take effect",
        Duration::from_secs(20),
        || {
            c.kubectl(&[
                "run",
                "probe",
                "--image=busybox",
                "--dry-run=server",
                "-o",
                "jsonpath={.metadata.labels.injected}",
            ])
            .stdout
                == b"webhook"
        },
    );

    // mutating: the label is added, the webhook's warning reaches kubectl
    let out = c.kubectl(&["run", "web", "--image=busybox", "--labels=app=web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Warning: the inject webhook added a label"),
        "{}",
        text(&out.stderr)
    );
    let l = labels(&c, "pod", "web");
    assert_eq!(l["injected"], "webhook", "{l}");
    assert_eq!(l["app"], "web", "{l}");
    // the object selector spares pods that opt out
    c.ok(&[
        "run",
        "plain",
        "--image=busybox",
        "--labels=skip-injection=yes",
    ]);
    assert!(labels(&c, "pod", "plain").get("injected").is_none());

    // validating: refused with kube's text, nothing stored
    let err = c.fails(&["run", "bad", "--image=busybox", "--labels=deny=true"]);
    assert!(
        err.contains(
            r#"Error from server (Forbidden): admission webhook "deny.korral.test" denied the request: objects labelled deny=true are not allowed here"#
        ),
        "{err}"
    );
    assert!(!c.kubectl(&["get", "pod", "bad"]).status.success());

    // what the webhooks were sent
    let reviews = hook.reviews();
    let web: Vec<&Value> = reviews.iter().filter(|r| r["name"] == "web").collect();
    let mutating = web
        .iter()
        .find(|r| r["path"] == "/inject")
        .expect("inject saw web");
    let validating = web
        .iter()
        .find(|r| r["path"] == "/deny")
        .expect("deny saw web");
    assert_eq!(mutating["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(mutating["operation"], "CREATE");
    assert_eq!(mutating["kind"], "Pod");
    assert_eq!(mutating["namespace"], "default");
    assert_eq!(mutating["options"], "CreateOptions");
    assert_eq!(mutating["dryRun"], false);
    assert_eq!(mutating["query"], "timeout=10s");
    assert_eq!(validating["query"], "timeout=5s");
    // validating webhooks run after the mutating ones
    assert_eq!(validating["labels"]["injected"], "webhook", "{validating}");
    let probe = reviews
        .iter()
        .find(|r| r["name"] == "probe" && r["path"] == "/inject")
        .expect("the dry run reached the webhook");
    assert_eq!(probe["dryRun"], true);

    // updates and deletes go through the validating webhook too
    c.ok(&["create", "configmap", "settings", "--from-literal=a=b"]);
    let err = c.fails(&["label", "configmap", "settings", "deny=true"]);
    assert!(
        err.contains("denied the request: objects labelled deny=true"),
        "{err}"
    );
    c.ok(&["label", "configmap", "settings", "protected=true"]);
    let err = c.fails(&["delete", "configmap", "settings"]);
    assert!(
        err.contains(
            r#"admission webhook "deny.korral.test" denied the request: protected objects stay"#
        ),
        "{err}"
    );
    c.ok(&["get", "configmap", "settings"]);
    let delete = hook
        .reviews()
        .into_iter()
        .find(|r| r["operation"] == "DELETE")
        .expect("the delete was reviewed");
    assert_eq!(delete["options"], "DeleteOptions");
    assert_eq!(delete["labels"]["protected"], "true");

    // a webhook that is down: Fail refuses with kube's 500, Ignore passes
    let down = |policy: &str| {
        format!(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: down
webhooks:
- name: down.korral.test
  admissionReviewVersions: ["v1"]
  sideEffects: None
  failurePolicy: {policy}
  timeoutSeconds: 2
  clientConfig:
    url: https://127.0.0.1:1/check
    caBundle: {ca}
  rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE"]
    resources: ["secrets"]
"#
        )
    };
    apply(&c, &down("Fail"));
    let mut err = String::new();
    c.wait_for(
        "the failing webhook to refuse",
        Duration::from_secs(20),
        || {
            let o = c.kubectl(&["create", "secret", "generic", "s1", "--from-literal=a=b"]);
            err = text(&o.stderr);
            !o.status.success()
        },
    );
    assert!(
        err.contains(r#"Internal error occurred: failed calling webhook "down.korral.test": failed to call webhook: Post "https://127.0.0.1:1/check?timeout=2s": dial tcp 127.0.0.1:1: connect: connection refused"#),
        "{err}"
    );
    apply(&c, &down("Ignore"));
    c.wait_for(
        "the ignored webhook to let secrets through",
        Duration::from_secs(20),
        || {
            c.kubectl(&["create", "secret", "generic", "s2", "--from-literal=a=b"])
                .status
                .success()
        },
    );
}

#[test]
fn namespaces_carry_their_name_label() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "team-a"]);
    assert_eq!(
        c.ok(&[
            "get",
            "namespace",
            "team-a",
            "-o",
            "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}",
        ]),
        "team-a"
    );
    // a write that drops it gets it back, as kube's defaulting does
    c.ok(&[
        "label",
        "namespace",
        "team-a",
        "kubernetes.io/metadata.name-",
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "namespace",
            "team-a",
            "-o",
            "jsonpath={.metadata.labels}"
        ]),
        r#"{"kubernetes.io/metadata.name":"team-a"}"#
    );
}
