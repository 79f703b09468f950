//! The built-in Ingress controller under `korral up` (process runtime,
//! loopback only): two backend Deployments answering differently, an
//! Ingress for two hosts and paths and a TLS Secret, synced from a folder.
//! Requests to 127.0.0.1 with Host headers reach the right backend per host
//! and path, round-robin over the ready pods; HTTPS serves the Secret's
//! certificate for its SNI name (and HTTP/2 by ALPN); the Ingress's status
//! carries the address; a pod whose readiness probe fails leaves the
//! rotation, and with no ready pod the answer is 503.

use crate::intake_up::Up;
use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use support::{stdout, wait_for};

/// A backend: `replicas` pods of busybox httpd writing `answer <pod name>`
/// into their page (and `extra` files), ready while `/www/ready` exists.
pub fn backend(name: &str, replicas: u32, extra: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: web
          image: busybox:1.36
          command: ["sh", "-c", "echo {name} $POD_NAME > /www/index.html; {extra} echo ok > /www/ready; exec busybox httpd -f -p $POD_IP:8080 -h /www"]
          env:
            - name: POD_IP
              valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
            - name: POD_NAME
              valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe:
            httpGet: {{path: /ready, port: http}}
            periodSeconds: 1
            failureThreshold: 1
          volumeMounts: [{{name: www, mountPath: /www}}]
      volumes: [{{name: www, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"#
    )
}

const INGRESS: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  tls:
    - hosts: [alpha.test]
      secretName: alpha-tls
  rules:
    - host: alpha.test
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}
    - host: beta.test
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: beta, port: {name: http}}}}
          - {path: /alpha.html, pathType: Exact, backend: {service: {name: alpha, port: {number: 80}}}}
"#;

/// A self-signed certificate for `alpha.test` (PEM files in `dir`) and its Secret.
fn tls_secret(dir: &Path) -> String {
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=alpha.test"])
        .args(["-addext", "subjectAltName=DNS:alpha.test"])
        .arg("-keyout")
        .arg(dir.join("alpha.key"))
        .arg("-out")
        .arg(dir.join("alpha.crt"))
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b64 = |f: &str| {
        let o = Command::new("base64")
            .args(["-w0"])
            .arg(dir.join(f))
            .output()
            .expect("base64");
        stdout(&o)
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: alpha-tls\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64("alpha.crt"),
        b64("alpha.key")
    )
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl")
}

/// The body for `host` and `path` through the Ingress's HTTP port.
fn get(port: u16, host: &str, path: &str) -> String {
    stdout(&curl(&[
        "-H",
        &format!("Host: {host}"),
        &format!("http://127.0.0.1:{port}{path}"),
    ]))
}

/// The status code for `host` and `path`.
fn status(port: u16, host: &str, path: &str) -> String {
    stdout(&curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("Host: {host}"),
        &format!("http://127.0.0.1:{port}{path}"),
    ]))
}

/// The port of `scheme` in korral up's "Ingress controller … on" line.
fn port_in(log: &str, scheme: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("Ingress controller"))?;
    let at = line.find(&format!("{scheme}://127.0.0.1:"))? + scheme.len() + 13;
    line[at..].split('/').next()?.parse().ok()
}

#[test]
fn ingress_routes_hosts_paths_tls_and_follows_readiness() {
    let data = tempfile::tempdir().expect("temp dir");
    let src = data.path().join("manifests");
    std::fs::create_dir_all(&src).expect("manifests dir");
    std::fs::write(
        src.join("alpha.yaml"),
        backend("alpha", 2, "echo alpha-page > /www/alpha.html;"),
    )
    .expect("write");
    std::fs::write(src.join("beta.yaml"), backend("beta", 1, "")).expect("write");
    std::fs::write(src.join("ingress.yaml"), INGRESS).expect("write");
    std::fs::write(src.join("secret.yaml"), tls_secret(data.path())).expect("write");
    let up = Up::start(
        data.path(),
        &src,
        &[
            "--ingress-http-listen",
            "127.0.0.1:0",
            "--ingress-https-listen",
            "127.0.0.1:0",
        ],
    );
    let log = || up.log();
    let (http, https) = (
        port_in(&log(), "http").expect("the HTTP URL is printed"),
        port_in(&log(), "https").expect("the HTTPS URL is printed"),
    );
    let kubectl = |args: &[&str]| up.kubectl(args);
    let ready_pods = |app: &str| up.ready_pods(app);
    wait_for("the backends ready", Duration::from_secs(90), || {
        ready_pods("alpha").len() == 2 && ready_pods("beta").len() == 1
    });

    // hosts and paths
    wait_for("alpha.test routed", Duration::from_secs(30), || {
        get(http, "alpha.test", "/").starts_with("alpha ")
    });
    wait_for("beta.test routed", Duration::from_secs(30), || {
        get(http, "beta.test", "/").starts_with("beta ")
    });
    assert!(get(http, "beta.test", "/index.html").starts_with("beta "));
    assert_eq!(get(http, "beta.test", "/alpha.html").trim(), "alpha-page");
    assert_eq!(status(http, "nobody.test", "/"), "404");

    // round-robin over both ready alpha pods
    let seen: BTreeSet<String> = (0..8)
        .map(|_| get(http, "alpha.test", "/").trim().to_string())
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");

    // the status carries the address
    wait_for(
        "the Ingress's status address",
        Duration::from_secs(30),
        || {
            let o = kubectl(&[
                "get",
                "ingress",
                "web",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[*].ip}",
            ]);
            stdout(&o) == "127.0.0.1"
        },
    );
    let o = kubectl(&[
        "get",
        "ingress",
        "web",
        "-o",
        "jsonpath={.spec.ingressClassName}",
    ]);
    assert_eq!(stdout(&o), "korral", "the default class is filled in");
    let o = kubectl(&[
        "get",
        "ingressclass",
        "korral",
        "-o",
        "jsonpath={.spec.controller}",
    ]);
    assert_eq!(stdout(&o), "korral.dev/ingress");

    // HTTPS: the Secret's certificate for its SNI name (verified against it), over HTTP/2
    let cacert = data.path().join("alpha.crt");
    let cacert = cacert.to_string_lossy();
    let resolve = |host: &str| format!("{host}:{https}:127.0.0.1");
    wait_for("alpha.test's certificate", Duration::from_secs(30), || {
        let o = curl(&[
            "--cacert",
            &cacert,
            "--resolve",
            &resolve("alpha.test"),
            "-w",
            " %{http_version}",
            &format!("https://alpha.test:{https}/"),
        ]);
        o.status.success() && stdout(&o).starts_with("alpha ") && stdout(&o).ends_with(" 2")
    });
    // another name gets the default certificate, which alpha.test's does not verify
    let o = curl(&[
        "--cacert",
        &cacert,
        "--resolve",
        &resolve("beta.test"),
        &format!("https://beta.test:{https}/"),
    ]);
    assert!(
        !o.status.success(),
        "beta.test must not get alpha.test's certificate"
    );
    let o = curl(&[
        "-k",
        "--resolve",
        &resolve("beta.test"),
        &format!("https://beta.test:{https}/"),
    ]);
    assert!(stdout(&o).starts_with("beta "), "{}", stdout(&o));

    // a pod made not-ready leaves the rotation
    let pods = ready_pods("alpha");
    let (gone, stays) = (&pods[0], &pods[1]);
    let o = kubectl(&["exec", gone, "--", "rm", "/www/ready"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the pod not ready", Duration::from_secs(30), || {
        !ready_pods("alpha").contains(gone)
    });
    wait_for(
        "only the ready pod answers",
        Duration::from_secs(30),
        || (0..6).all(|_| get(http, "alpha.test", "/").trim() == format!("alpha {stays}")),
    );
    // no ready pod: 503 with a clear body
    let o = kubectl(&["exec", stays, "--", "rm", "/www/ready"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for(
        "503 without ready endpoints",
        Duration::from_secs(30),
        || status(http, "alpha.test", "/") == "503",
    );
    assert!(get(http, "alpha.test", "/").contains("no ready endpoints for default/alpha:80"));
    assert!(
        get(http, "beta.test", "/").starts_with("beta "),
        "other hosts still answer"
    );

    up.stop();
}
