//! kubectl's typed commands send protobuf bodies (kubectl 1.32+): each one
//! against an in-process korral server, checking kubectl's exact report,
//! that the request really was protobuf (kubectl's `-v=7` request log), and
//! that the stored object holds what the command said.

use crate::cluster;

use std::process::Command;

use cluster::{Cluster, text};

const PROTOBUF: &str = "Content-Type: application/vnd.kubernetes.protobuf";

/// Runs a kubectl command that writes one object; it must succeed, and its
/// request body must have been protobuf. Returns kubectl's trimmed stdout.
fn write(c: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["-v=7"];
    all.extend_from_slice(args);
    let o = c.kubectl(&all);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(
        o.status.success(),
        "kubectl {args:?} failed:\n{stdout}{stderr}"
    );
    assert!(
        stderr.contains(PROTOBUF),
        "kubectl {args:?} did not send protobuf:\n{stderr}"
    );
    stdout.trim().to_string()
}

/// Runs kubectl 1.32 (next to the `kubectl` on PATH, which picks 1.33 for
/// korral) with `-v=7`; it must succeed and send protobuf. Returns its
/// trimmed stdout and its log.
fn kubectl_132(c: &Cluster, args: &[&str]) -> (String, String) {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubectl"))
        .find(|k| k.is_file())
        .expect("kubectl on PATH");
    let real = std::fs::canonicalize(&on_path).expect("kubectl's real path");
    let binary = real
        .parent()
        .expect("kubectl's directory")
        .join("kubectl.1.32");
    let o = Command::new(&binary)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .arg("--cache-dir")
        .arg(c.dir.path().join("kube-cache-1.32"))
        .arg("-v=7")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(
        o.status.success(),
        "kubectl 1.32 {args:?} failed:\n{stdout}{stderr}"
    );
    assert!(
        stderr.contains(PROTOBUF),
        "kubectl 1.32 {args:?} did not send protobuf:\n{stderr}"
    );
    (stdout.trim().to_string(), stderr)
}

/// A JSONPath of one object.
fn get(c: &Cluster, what: &[&str], path: &str) -> String {
    let jsonpath = format!("-o=jsonpath={path}");
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.push(&jsonpath);
    c.ok(&args)
}

#[test]
fn protobuf_kubectl_creates_jobs_cron_jobs_and_autoscalers() {
    let c = Cluster::start();
    assert_eq!(
        write(&c, &["create", "job", "j1", "--image=busybox:1.36"]),
        "job.batch/j1 created"
    );
    assert_eq!(
        get(
            &c,
            &["job", "j1"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "busybox:1.36"
    );
    assert_eq!(
        get(&c, &["job", "j1"], "{.spec.template.spec.restartPolicy}"),
        "Never"
    );
    // the server generated the selector and labelled the template with it
    let uid = get(&c, &["job", "j1"], "{.metadata.uid}");
    assert_eq!(
        get(
            &c,
            &["job", "j1"],
            "{.spec.selector.matchLabels.batch\\.kubernetes\\.io/controller-uid}"
        ),
        uid
    );

    assert_eq!(
        write(
            &c,
            &[
                "create",
                "cronjob",
                "cj1",
                "--image=busybox:1.36",
                "--schedule=*/5 * * * *",
            ]
        ),
        "cronjob.batch/cj1 created"
    );
    assert_eq!(
        get(&c, &["cronjob", "cj1"], "{.spec.schedule}"),
        "*/5 * * * *"
    );
    assert_eq!(
        get(
            &c,
            &["cronjob", "cj1"],
            "{.spec.jobTemplate.spec.template.spec.containers[0].image}"
        ),
        "busybox:1.36"
    );
    // defaulted as kube-apiserver does
    assert_eq!(
        get(&c, &["cronjob", "cj1"], "{.spec.concurrencyPolicy}"),
        "Allow"
    );

    assert_eq!(
        write(&c, &["create", "deployment", "d1", "--image=nginx:1.27"]),
        "deployment.apps/d1 created"
    );
    // kubectl 1.33 autoscales with autoscaling/v2 when the server serves it
    assert_eq!(
        write(&c, &["autoscale", "deployment", "d1", "--max=3"]),
        "horizontalpodautoscaler.autoscaling/d1 autoscaled"
    );
    assert_eq!(
        get(
            &c,
            &["horizontalpodautoscalers.v2.autoscaling", "d1"],
            "{.spec.scaleTargetRef.kind}/{.spec.scaleTargetRef.name} {.spec.minReplicas} {.spec.maxReplicas}"
        ),
        "Deployment/d1 1 3"
    );
    // kubectl 1.32 with autoscaling/v1
    let (out, log) = kubectl_132(
        &c,
        &[
            "autoscale",
            "deployment",
            "d1",
            "--name=d1cpu",
            "--min=2",
            "--max=5",
            "--cpu-percent=80",
        ],
    );
    assert_eq!(out, "horizontalpodautoscaler.autoscaling/d1cpu autoscaled");
    assert!(
        log.contains("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"),
        "{log}"
    );
    assert_eq!(
        get(
            &c,
            &["horizontalpodautoscalers.v1.autoscaling", "d1cpu"],
            "{.apiVersion} {.spec.minReplicas} {.spec.maxReplicas} {.spec.targetCPUUtilizationPercentage}"
        ),
        "autoscaling/v1 2 5 80"
    );
    // one object: the v2 view of it holds the CPU target as a metric
    assert_eq!(
        get(
            &c,
            &["horizontalpodautoscalers.v2.autoscaling", "d1cpu"],
            "{.spec.metrics[0].resource.name} {.spec.metrics[0].resource.target.averageUtilization}"
        ),
        "cpu 80"
    );
}

#[test]
fn protobuf_kubectl_creates_rbac_objects() {
    let c = Cluster::start();
    assert_eq!(
        write(
            &c,
            &["create", "role", "r1", "--verb=get", "--resource=pods"]
        ),
        "role.rbac.authorization.k8s.io/r1 created"
    );
    assert_eq!(
        get(
            &c,
            &["role", "r1"],
            "{.rules[0].verbs} {.rules[0].apiGroups} {.rules[0].resources}"
        ),
        r#"["get"] [""] ["pods"]"#
    );
    assert_eq!(
        write(
            &c,
            &["create", "rolebinding", "rb1", "--role=r1", "--user=u"]
        ),
        "rolebinding.rbac.authorization.k8s.io/rb1 created"
    );
    assert_eq!(
        get(
            &c,
            &["rolebinding", "rb1"],
            "{.roleRef.kind}/{.roleRef.name} {.subjects[0].kind}/{.subjects[0].name} {.subjects[0].apiGroup}"
        ),
        "Role/r1 User/u rbac.authorization.k8s.io"
    );
    assert_eq!(
        write(
            &c,
            &[
                "create",
                "clusterrole",
                "cr1",
                "--verb=get,list,watch",
                "--resource=nodes,deployments.apps",
            ]
        ),
        "clusterrole.rbac.authorization.k8s.io/cr1 created"
    );
    assert_eq!(
        get(
            &c,
            &["clusterrole", "cr1"],
            "{.rules[0].resources} {.rules[1].apiGroups} {.rules[1].resources} {.rules[1].verbs}"
        ),
        r#"["nodes"] ["apps"] ["deployments"] ["get","list","watch"]"#
    );
    assert_eq!(
        write(
            &c,
            &[
                "create",
                "clusterrolebinding",
                "crb1",
                "--clusterrole=cr1",
                "--group=g",
                "--serviceaccount=default:sa1",
            ]
        ),
        "clusterrolebinding.rbac.authorization.k8s.io/crb1 created"
    );
    assert_eq!(
        get(
            &c,
            &["clusterrolebinding", "crb1"],
            "{.roleRef.name} {.subjects[0].kind}/{.subjects[0].name} {.subjects[1].kind}/{.subjects[1].namespace}/{.subjects[1].name}"
        ),
        "cr1 Group/g ServiceAccount/default/sa1"
    );
}

#[test]
fn protobuf_kubectl_creates_accounts_quotas_priorities_budgets_and_ingresses() {
    let c = Cluster::start();
    assert_eq!(
        write(&c, &["create", "serviceaccount", "sa1"]),
        "serviceaccount/sa1 created"
    );
    assert_eq!(
        get(&c, &["serviceaccount", "sa1"], "{.metadata.namespace}"),
        "default"
    );

    assert_eq!(
        write(
            &c,
            &["create", "quota", "q1", "--hard=pods=10,requests.cpu=2"]
        ),
        "resourcequota/q1 created"
    );
    assert_eq!(
        get(
            &c,
            &["quota", "q1"],
            "{.spec.hard.pods} {.spec.hard.requests\\.cpu}"
        ),
        "10 2"
    );

    assert_eq!(
        write(&c, &["create", "priorityclass", "pc1", "--value=1000"]),
        "priorityclass.scheduling.k8s.io/pc1 created"
    );
    assert_eq!(
        get(
            &c,
            &["priorityclass", "pc1"],
            "{.value} {.preemptionPolicy}"
        ),
        "1000 PreemptLowerPriority"
    );

    assert_eq!(
        write(
            &c,
            &[
                "create",
                "poddisruptionbudget",
                "pdb1",
                "--selector=app=x",
                "--min-available=1",
            ]
        ),
        "poddisruptionbudget.policy/pdb1 created"
    );
    assert_eq!(
        get(
            &c,
            &["pdb", "pdb1"],
            "{.spec.selector.matchLabels.app} {.spec.minAvailable}"
        ),
        "x 1"
    );
    assert_eq!(
        write(
            &c,
            &[
                "create",
                "poddisruptionbudget",
                "pdb2",
                "--selector=app=y",
                "--max-unavailable=25%",
            ]
        ),
        "poddisruptionbudget.policy/pdb2 created"
    );
    assert_eq!(get(&c, &["pdb", "pdb2"], "{.spec.maxUnavailable}"), "25%");

    assert_eq!(
        write(
            &c,
            &["create", "ingress", "ing1", "--rule=foo.com/bar=svc1:8080"]
        ),
        "ingress.networking.k8s.io/ing1 created"
    );
    assert_eq!(
        get(
            &c,
            &["ingress", "ing1"],
            "{.spec.rules[0].host} {.spec.rules[0].http.paths[0].path} {.spec.rules[0].http.paths[0].pathType} {.spec.rules[0].http.paths[0].backend.service.name}:{.spec.rules[0].http.paths[0].backend.service.port.number}"
        ),
        "foo.com /bar Exact svc1:8080"
    );
}

const CSR: &str = r#"{"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
 "metadata": {"name": "csr1"},
 "spec": {"request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIYU1JR0JBZ0VBTUI4eER6QU5CZ05WQkFNTUJtRnVaMlZzWVRFTU1Bb0dBMVVFQ2d3RFpHVjJNRmt3RXdZSApLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFek5LdXkwSWlieHV3SnlzS0svRnpzTFNVSXR5QzdCZldhbFFlCnJFdEYvUVZvdC9SeVFyTXZkSFFTWFlaU1V2YzY0UTIvT2Y3cEx4WXJBSlVoV0N1VUs2QUFNQW9HQ0NxR1NNNDkKQkFNQ0EwZ0FNRVVDSUMvY2diaU5PdVh0WVdlaG5Mcy9aUUpQYlpERXlWR1Z5NUFmOHRqUUVnWFFBaUVBbTFoagphYzFKVXhZdzkrTnRHYTRLZEpTNU1TakN2UStTdjBQYnNhUERxTmM9Ci0tLS0tRU5EIENFUlRJRklDQVRFIFJFUVVFU1QtLS0tLQo=",
  "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}}"#;

#[test]
fn protobuf_kubectl_reviews_and_approvals() {
    let c = Cluster::start();
    // authentication.k8s.io/v1 SelfSubjectReview
    let whoami = write(
        &c,
        &["auth", "whoami", "-o=jsonpath={.status.userInfo.username}"],
    );
    assert!(!whoami.is_empty());
    // authorization.k8s.io/v1 SelfSubjectAccessReview
    assert_eq!(write(&c, &["auth", "can-i", "create", "jobs.batch"]), "yes");
    // certificates/approval: an update (PUT) with the whole CertificateSigningRequest
    let o = c.kubectl_in(&["create", "-f", "-"], Some(CSR));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        write(&c, &["certificate", "approve", "csr1"]),
        "certificatesigningrequest.certificates.k8s.io/csr1 approved"
    );
    assert_eq!(
        get(&c, &["csr", "csr1"], "{.spec.usages[0]} {.spec.signerName}"),
        "client auth kubernetes.io/kube-apiserver-client"
    );
}

/// Once the API server keeps the status an approval update sends, this
/// passes: the protobuf body itself decodes with its condition (the
/// `csrapprove` capture in tests/protobuf).
#[test]
fn protobuf_kubectl_certificate_approval_is_stored() {
    let c = Cluster::start();
    let o = c.kubectl_in(&["create", "-f", "-"], Some(CSR));
    assert!(o.status.success(), "{}", text(&o.stderr));
    write(&c, &["certificate", "approve", "csr1"]);
    assert_eq!(
        get(
            &c,
            &["csr", "csr1"],
            "{.status.conditions[0].type} {.status.conditions[0].reason}"
        ),
        "Approved KubectlApprove"
    );
}

/// `kubectl drain --disable-eviction` deletes pods with a protobuf
/// DeleteOptions body (the `drain2` capture in tests/protobuf decodes).
#[test]
fn protobuf_kubectl_drain_deletes_with_protobuf_delete_options() {
    let c = Cluster::start();
    let o = c.kubectl_in(&["create", "-f", "-"], Some(NODE_AND_POD));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = write(
        &c,
        &[
            "drain",
            "n1",
            "--disable-eviction",
            "--force",
            "--grace-period=0",
            "--timeout=30s",
        ],
    );
    assert!(out.ends_with("node/n1 drained"), "{out}");
    assert_eq!(c.ok(&["get", "pods", "-o=name"]), "");
}

const NODE_AND_POD: &str = r#"{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "default"},
  "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox:1.36"}]}},
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2", "namespace": "default"},
  "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox:1.36"}]}}]}"#;
