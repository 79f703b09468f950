//! Joining a node by token (kubelet TLS bootstrapping), end to end with a
//! real `korral server`, `korral node` (process runtime) and kubectl: a join
//! token from `korral token create --bootstrap`; the node checks the CA's
//! hash, asks for its client certificate with a CertificateSigningRequest
//! (approved and signed by the csrapproving/csrsigning controllers), turns
//! Ready and runs a scheduled pod; a restart reuses the certificate; with a
//! short `--cluster-signing-duration` the certificate rotates while the node
//! keeps heartbeating (and the expired first request is cleaned up); a wrong CA hash, a wrong secret and an expired token
//! are refused and leave nothing behind (a bare token with `--ca-cert-hash`
//! joins); `kubectl certificate approve|deny`
//! work on other requests.

use crate::node_support;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use node_support::{NodeProc, jsonpath, tail, wait_node, wait_ready};
use serde_json::Value;
use support::{Server, korral_bin, poll_until, stderr, stdout, wait_for};

/// `korral token create --bootstrap` against the server's data directory.
fn join_token(s: &Server, extra: &[&str]) -> String {
    let o = Command::new(korral_bin())
        .args(["token", "create", "--bootstrap", "--data-dir"])
        .arg(s.dir.path())
        .args(extra)
        .output()
        .expect("korral token create --bootstrap");
    assert!(o.status.success(), "token create: {}", stderr(&o));
    let token = stdout(&o).trim().to_string();
    assert!(token.starts_with("K10"), "not a join token: {token}");
    token
}

/// The flags of a joining process-runtime node (no kubeconfig).
fn node_args(s: &Server, name: &str, data: &Path, token: &str) -> Vec<String> {
    [
        "--server",
        &s.url,
        "--token",
        token,
        "--name",
        name,
        "--runtime",
        "process",
        "--process-pod-ips",
        "loopback",
        "--listen",
        "127.0.0.1:0",
        "--ingress-http-listen",
        "off",
        "--ingress-https-listen",
        "off",
        "--service-lb",
        "off",
        "--data-dir",
        &data.to_string_lossy(),
        "--heartbeat-interval",
        "1s",
        "--sync-period",
        "1s",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn data_dir(s: &Server, name: &str) -> PathBuf {
    let d = s.dir.path().join(name);
    std::fs::create_dir_all(&d).expect("data dir");
    d.canonicalize().expect("canonical")
}

/// Runs `korral node ARGS` expected to fail soon: its output, or a panic
/// after `deadline`.
fn node_failing(args: &[String], deadline: Duration) -> Output {
    let child = Command::new(korral_bin())
        .arg("node")
        .args(args)
        .env("KORRAL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start korral node");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("node output"),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not reaped yet (the waiter has not answered)
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("korral node still running after {deadline:?}; it should have refused to join")
        }
    }
}

fn csrs(s: &Server) -> Vec<Value> {
    s.get_json(&["csr"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn condition<'a>(csr: &'a Value, type_: &str) -> Option<&'a Value> {
    csr.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
}

fn issued(csr: &Value) -> bool {
    csr.pointer("/status/certificate")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
}

/// `openssl x509 -noout ARGS` of the client certificate in a node's kubeconfig.
fn kubeconfig_cert(data: &Path, what: &str) -> String {
    let kc = data.join("kubeconfig.yaml");
    let script = format!(
        "grep client-certificate-data {} | awk '{{print $2}}' | base64 -d | openssl x509 -noout {what}",
        kc.display()
    );
    let o = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    stdout(&o).trim().to_string()
}

fn lease_renew_time(s: &Server, name: &str) -> String {
    let o = s.kubectl(&[
        "get",
        "lease",
        name,
        "-n",
        "kube-node-lease",
        "-o",
        "jsonpath={.spec.renewTime}",
    ]);
    stdout(&o).trim().to_string()
}

/// Whether process `pid` runs (exists and is no zombie).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// Kills every container process the node started (they outlive the daemon by design).
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.0.join("containers")) {
            for e in rd.flatten() {
                if let Some(pid) = std::fs::read_to_string(e.path().join("pid"))
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok())
                {
                    let _ = Command::new("kill")
                        .args(["-9", "--", &format!("-{pid}")])
                        .status();
                }
            }
        }
    }
}

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: joined}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo ok > /tmp/joined-ready-$$; exec sleep 3600"]
"#;

#[test]
fn a_node_joins_by_token_runs_a_pod_and_reuses_its_certificate_on_restart() {
    let s = Server::start();
    let token = join_token(&s, &["--ttl", "1h"]);
    let id = token
        .split("::")
        .nth(1)
        .and_then(|t| t.split('.').next())
        .expect("token id")
        .to_string();
    let name = "joiner-1";
    let data = data_dir(&s, "node-1");
    let _reaper = Reaper(data.clone());
    let mut node = NodeProc::start(
        &data,
        &s.dir.path().join("node-1.log"),
        &node_args(&s, name, &data, &token),
    );
    wait_node(&s, &node, name);

    // one request, from the bootstrap token's user, approved and signed
    let all = csrs(&s);
    assert_eq!(all.len(), 1, "CSRs: {all:#?}");
    let csr = &all[0];
    assert_eq!(csr["spec"]["username"], format!("system:bootstrap:{id}"));
    assert_eq!(
        csr["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    let groups = csr["spec"]["groups"].to_string();
    assert!(groups.contains("system:bootstrappers"), "{groups}");
    let approved = condition(csr, "Approved").expect("Approved condition");
    assert_eq!(approved["reason"], "AutoApproved");
    assert!(issued(csr), "no certificate: {csr:#}");
    let csr_name = csr["metadata"]["name"].as_str().expect("name").to_string();
    let table = s.ok(&["get", "csr", &csr_name]);
    assert!(table.contains("Approved,Issued"), "{table}");

    // the node runs as itself, with the certificate it asked for
    let subject = kubeconfig_cert(&data, "-subject");
    assert!(
        subject.contains("system:node:joiner-1") && subject.contains("system:nodes"),
        "{subject}"
    );
    let kubeconfig = std::fs::read_to_string(data.join("kubeconfig.yaml")).expect("kubeconfig");
    assert!(
        !kubeconfig.contains(&token[token.len() - 16..]),
        "the node's kubeconfig must not keep the bootstrap secret"
    );
    let serial = kubeconfig_cert(&data, "-serial");
    assert!(serial.starts_with("serial="), "{serial}");
    let as_node = |args: &[&str]| {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(data.join("kubeconfig.yaml"))
            .args(args)
            .output()
            .expect("kubectl")
    };
    let who = as_node(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(
        stdout(&who).trim(),
        "system:node:joiner-1 [\"system:nodes\",\"system:authenticated\"]",
        "{}",
        stderr(&who)
    );
    // NodeRestriction: its own Node only
    let o = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(data.join("kubeconfig.yaml"))
        .args(["create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"apiVersion: v1\nkind: Node\nmetadata: {name: someone-else}\n")?;
            c.wait_with_output()
        })
        .expect("kubectl create node");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("node \"joiner-1\" is not allowed to modify node \"someone-else\""),
        "{}",
        stderr(&o)
    );

    // a pod the scheduler places on it runs
    s.apply(POD);
    wait_ready(&s, &node, "joined", Duration::from_secs(60));
    assert_eq!(jsonpath(&s, "pod", "joined", "{.spec.nodeName}"), name);

    // a restart keeps the certificate: no new request
    node.restart();
    let before = lease_renew_time(&s, name);
    wait_for(
        "the restarted node's lease to be renewed",
        Duration::from_secs(30),
        || {
            let now = lease_renew_time(&s, name);
            !now.is_empty() && now != before
        },
    );
    assert!(
        node.log_text()
            .contains("reusing the node's client certificate"),
        "{}",
        tail(&node.log_text(), 30)
    );
    assert_eq!(csrs(&s).len(), 1, "a restart made a new CSR");
    assert_eq!(kubeconfig_cert(&data, "-serial"), serial);
    assert_eq!(
        jsonpath(
            &s,
            "node",
            name,
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True"
    );
}

#[test]
fn a_joined_nodes_certificate_rotates_and_it_keeps_heartbeating() {
    let s = Server::start_with(&["--cluster-signing-duration", "60s"]);
    let token = join_token(&s, &[]);
    let name = "rotator-1";
    let data = data_dir(&s, "node-r");
    let _reaper = Reaper(data.clone());
    let node = NodeProc::start(
        &data,
        &s.dir.path().join("node-r.log"),
        &node_args(&s, name, &data, &token),
    );
    wait_node(&s, &node, name);
    let pid = node.pid().expect("pid") as i32;
    let first_serial = kubeconfig_cert(&data, "-serial");
    let end = kubeconfig_cert(&data, "-enddate");
    assert!(end.starts_with("notAfter="), "{end}");

    // the renewal: a request from the node itself, approved as a self renewal, signed
    let own = format!("system:node:{name}");
    let renewed = || {
        csrs(&s).into_iter().find(|c| {
            c["spec"]["username"] == own.as_str() && condition(c, "Approved").is_some() && issued(c)
        })
    };
    assert!(
        poll_until(Duration::from_secs(120), || renewed().is_some()),
        "no renewal CSR from {own}; CSRs: {:#?}\nnode log:\n{}",
        csrs(&s),
        tail(&node.log_text(), 40)
    );
    let renewal = renewed().expect("renewal");
    let message = condition(&renewal, "Approved").expect("approved")["message"].to_string();
    assert!(
        message.contains("self kubelet client certificate"),
        "{message}"
    );
    assert!(
        renewal["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("csr-")),
        "{renewal:#}"
    );

    // the node swapped it in: a new serial in its kubeconfig, and it keeps renewing its lease
    wait_for(
        "a new certificate in the node's kubeconfig",
        Duration::from_secs(30),
        || {
            let now = kubeconfig_cert(&data, "-serial");
            now.starts_with("serial=") && now != first_serial
        },
    );
    assert!(
        poll_until(Duration::from_secs(10), || node
            .log_text()
            .contains("rotated the node's client certificate")),
        "{}",
        tail(&node.log_text(), 30)
    );
    // swapped in the running daemon: the same process, still alive
    assert!(
        running(pid) && node.pid() == Some(pid as u32),
        "the node restarted for the rotation"
    );
    let after_swap = lease_renew_time(&s, name);
    for round in 0..3 {
        let seen = lease_renew_time(&s, name);
        wait_for(
            &format!("lease renewal {round} after the rotation"),
            Duration::from_secs(15),
            || {
                let now = lease_renew_time(&s, name);
                !now.is_empty() && now != seen
            },
        );
    }
    assert_ne!(lease_renew_time(&s, name), after_swap);
    assert_eq!(
        jsonpath(
            &s,
            "node",
            name,
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True",
        "{}",
        tail(&node.log_text(), 30)
    );
    // the bootstrap request goes once its certificate has expired (csrcleaner)
    wait_for(
        "the expired bootstrap CSR to be cleaned up",
        Duration::from_secs(60),
        || {
            !csrs(&s).iter().any(|c| {
                c["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("node-csr-"))
            })
        },
    );
    assert!(
        !node.log_text().contains("Unauthorized"),
        "the node was refused after the rotation:\n{}",
        tail(&node.log_text(), 30)
    );
}

/// Writes a bootstrap token Secret by hand (as kubeadm would) with `expiration`.
fn token_secret(s: &Server, id: &str, secret: &str, expiration: &str) {
    s.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: bootstrap-token-{id}, namespace: kube-system}}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: {id}
  token-secret: {secret}
  usage-bootstrap-authentication: "true"
  auth-extra-groups: system:bootstrappers:korral:default-node-token
  expiration: "{expiration}"
"#
    ));
}

#[test]
fn wrong_or_expired_tokens_are_refused_and_create_nothing() {
    let s = Server::start();
    let token = join_token(&s, &[]);
    let (prefix, bootstrap) = token.split_once("::").expect("K10 form");
    let hash = prefix.trim_start_matches("K10");
    let data = data_dir(&s, "node-x");
    let deadline = Duration::from_secs(60);

    // a CA hash of another cluster: refused before any credential is sent
    let other = "0".repeat(64);
    let o = node_failing(
        &node_args(&s, "x-1", &data, &format!("K10{other}::{bootstrap}")),
        deadline,
    );
    let text = stderr(&o);
    assert!(!o.status.success());
    assert!(
        text.contains(&other) && text.contains(hash),
        "the refusal must name both hashes: {text}"
    );

    // a bare token without a hash: refused, saying why
    let o = node_failing(&node_args(&s, "x-2", &data, bootstrap), deadline);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--ca-cert-hash"), "{}", stderr(&o));

    // the right hash, a wrong secret: 401
    let id = bootstrap.split('.').next().expect("id");
    let wrong = format!("K10{hash}::{id}.0000000000000000");
    let o = node_failing(&node_args(&s, "x-3", &data, &wrong), deadline);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));

    // an expired token: 401
    token_secret(&s, "expird", "0123456789abcdef", "2020-01-01T00:00:00Z");
    let expired = format!("K10{hash}::expird.0123456789abcdef");
    let o = node_failing(&node_args(&s, "x-4", &data, &expired), deadline);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    // the same Secret unexpired works: the 401 was the expiry, not the form
    token_secret(&s, "expird", "0123456789abcdef", "2999-01-01T00:00:00Z");
    let (code, body) = s.curl(
        "GET",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        Some("expird.0123456789abcdef"),
        "application/json",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.curl(
        "GET",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        Some(&format!("{id}.0000000000000000")),
        "application/json",
        None,
    );
    assert_eq!(code, 401, "{body}");

    // nothing was created by the refused joins
    assert_eq!(csrs(&s).len(), 0, "CSRs: {:#?}", csrs(&s));
    let nodes = s.get_json(&["nodes"]);
    assert_eq!(
        nodes["items"].as_array().map(Vec::len),
        Some(0),
        "{nodes:#}"
    );
    assert!(
        !data.join("kubeconfig.yaml").exists(),
        "a refused join wrote a kubeconfig"
    );

    // kubeadm's form: the bare token with --ca-cert-hash joins
    let _reaper = Reaper(data.clone());
    let mut args = node_args(&s, "x-5", &data, bootstrap);
    args.extend(["--ca-cert-hash".to_string(), format!("sha256:{hash}")]);
    let node = NodeProc::start(&data, &s.dir.path().join("node-x.log"), &args);
    wait_node(&s, &node, "x-5");
    assert_eq!(csrs(&s).len(), 1, "CSRs: {:#?}", csrs(&s));
}

/// A PKCS#10 request (PEM) for `subject` made with openssl in `dir`.
fn openssl_request(dir: &Path, name: &str, subject: &str) -> String {
    let key = dir.join(format!("{name}.key"));
    let req = dir.join(format!("{name}.csr"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&req)
        .output()
        .expect("openssl req");
    assert!(o.status.success(), "openssl: {}", stderr(&o));
    std::fs::read_to_string(&req).expect("request")
}

fn csr_object(name: &str, request_pem: &str, signer: &str) -> String {
    let b64 = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(request_pem.as_bytes())?;
            c.wait_with_output()
        })
        .expect("base64");
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  request: {}\n  signerName: {signer}\n  usages: [digital signature, client auth]\n",
        stdout(&b64).trim()
    )
}

#[test]
fn kubectl_certificate_approve_and_deny_work_on_other_requests() {
    let s = Server::start();
    let dir = s.dir.path();
    let jane = openssl_request(dir, "jane", "/CN=jane/O=devs");
    s.apply(&csr_object(
        "jane",
        &jane,
        "kubernetes.io/kube-apiserver-client",
    ));
    let mallory = openssl_request(dir, "mallory", "/CN=mallory/O=devs");
    s.apply(&csr_object(
        "mallory",
        &mallory,
        "kubernetes.io/kube-apiserver-client",
    ));
    // no one gets system:masters from this signer, not even an admin (CertificateSubjectRestriction)
    let root = openssl_request(dir, "root", "/CN=root/O=system:masters");
    let o = s.kubectl_with(
        &["create", "-f", "-"],
        &[],
        Some(&csr_object(
            "root",
            &root,
            "kubernetes.io/kube-apiserver-client",
        )),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
        ),
        "{}",
        stderr(&o)
    );
    // a viewer may not approve (CertificateApproval)
    let viewer = s.kubeconfig_for("viewer");
    let o = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&viewer)
        .args(["certificate", "approve", "jane"])
        .output()
        .expect("kubectl");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("forbidden"), "{}", stderr(&o));
    // the approver leaves a person's requests alone; the requester is the caller
    let get = |n: &str| s.get_json(&["csr", n]);
    assert_eq!(get("jane")["spec"]["username"], "korral-admin");
    assert!(condition(&get("jane"), "Approved").is_none());

    s.ok(&["certificate", "approve", "jane"]);
    s.ok(&["certificate", "deny", "mallory"]);
    wait_for("jane's certificate", Duration::from_secs(30), || {
        issued(&get("jane"))
    });
    let table = s.ok(&["get", "csr", "jane", "mallory"]);
    assert!(table.contains("Approved,Issued"), "{table}");
    assert!(table.contains("Denied"), "{table}");
    let jane_now = get("jane");
    let approved = condition(&jane_now, "Approved").expect("approved");
    assert_eq!(approved["reason"], "KubectlApprove");
    // a denied request is never signed
    assert!(
        !poll_until(Duration::from_secs(3), || issued(&get("mallory"))),
        "a denied request was signed"
    );
    // jane's certificate authenticates as jane
    let cert = get("jane")["status"]["certificate"]
        .as_str()
        .expect("certificate")
        .to_string();
    let pem = Command::new("sh")
        .args(["-c", &format!("echo {cert} | base64 -d")])
        .output()
        .expect("decode");
    std::fs::write(dir.join("jane.crt"), &pem.stdout).expect("write");
    let o = Command::new("curl")
        .args(["-sk", "--max-time", "5", "--cert"])
        .arg(dir.join("jane.crt"))
        .arg("--key")
        .arg(dir.join("jane.key"))
        .arg(format!("{}/api/v1/namespaces/default/pods", s.url))
        .output()
        .expect("curl");
    let body = stdout(&o);
    assert!(body.contains("User \\\"jane\\\" cannot list"), "{body}");
}
