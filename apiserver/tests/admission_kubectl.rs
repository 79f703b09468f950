//! ValidatingAdmissionPolicy through the real kubectl: a policy limiting
//! Deployments (and their scale subresource) refuses `kubectl create` and
//! `kubectl scale` with kube-apiserver's text; a parameterised policy reads
//! its limit from a ConfigMap and words its message with
//! `messageExpression`; a Warn binding only warns; a binding's namespace
//! selector limits where a policy applies.

use crate::cluster;

use std::time::Duration;

use cluster::{Cluster, text};

const POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: max-replicas
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments", "deployments/scale"]
  validations:
  - expression: "object.spec.replicas <= 5"
    message: "replicas must be no greater than 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: max-replicas
spec:
  policyName: max-replicas
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        limits: enforced
"#;

const PARAMS_POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-budget
spec:
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  variables:
  - name: limit
    expression: "int(params.data.max)"
  validations:
  - expression: "object.spec.replicas <= variables.limit"
    messageExpression: "'at most ' + params.data.max + ' replicas in ' + request.namespace"
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-budget
spec:
  policyName: replica-budget
  validationActions: [Warn]
  paramRef:
    name: budget
    namespace: default
    parameterNotFoundAction: Deny
"#;

#[test]
fn a_policy_refuses_what_its_expression_rejects_with_kubes_text() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "prod"]);
    c.ok(&["label", "namespace", "prod", "limits=enforced"]);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
        "-n",
        "prod",
    ]);
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(POLICY));
    assert!(o.status.success(), "{}", text(&o.stderr));

    let create_big = || {
        c.kubectl_in(
            &[
                "create",
                "deployment",
                "big",
                "--image=nginx:1.27",
                "--replicas=6",
                "-n",
                "prod",
            ],
            None,
        )
    };
    c.wait_for("the policy to take effect", Duration::from_secs(10), || {
        !create_big().status.success()
    });
    let err = text(&create_big().stderr);
    assert!(
        err.contains(
            "deployments.apps \"big\" is forbidden: ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas' denied request: replicas must be no greater than 5"
        ),
        "{err}"
    );
    // kubectl apply words a 422 with its causes, as against kube-apiserver
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: big\n  namespace: prod\nspec:\n  replicas: 7\n  selector:\n    matchLabels: {app: big}\n  template:\n    metadata:\n      labels: {app: big}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n";
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(manifest));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(
            "The deployments \"big\" is invalid: : ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas' denied request: replicas must be no greater than 5"
        ),
        "{}",
        text(&o.stderr)
    );
    // the scale subresource too
    let o = c.kubectl_in(
        &["scale", "deployment", "web", "--replicas=6", "-n", "prod"],
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("denied request: replicas must be no greater than 5"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deployment",
            "web",
            "-n",
            "prod",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
    c.ok(&["scale", "deployment", "web", "--replicas=5", "-n", "prod"]);
    // a namespace the binding does not select is not limited
    c.ok(&[
        "create",
        "deployment",
        "big",
        "--image=nginx:1.27",
        "--replicas=6",
    ]);
}

#[test]
fn params_messages_and_warn_actions() {
    let c = Cluster::start();
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(PARAMS_POLICY));
    assert!(o.status.success(), "{}", text(&o.stderr));
    // without its params a Deny parameterNotFoundAction refuses
    c.wait_for("the policy to take effect", Duration::from_secs(10), || {
        let o = c.kubectl_in(&["create", "deployment", "a", "--image=nginx:1.27"], None);
        !o.status.success()
            && text(&o.stderr)
                .contains("no params found for policy binding with `Deny` parameterNotFoundAction")
    });
    c.ok(&["create", "configmap", "budget", "--from-literal=max=3"]);
    c.wait_for("the params to be found", Duration::from_secs(10), || {
        c.kubectl_in(&["create", "deployment", "a", "--image=nginx:1.27"], None)
            .status
            .success()
    });
    // a Warn binding lets the request through with a warning
    let o = c.kubectl_in(
        &[
            "create",
            "deployment",
            "b",
            "--image=nginx:1.27",
            "--replicas=4",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(
            "Warning: Validation failed for ValidatingAdmissionPolicy 'replica-budget' with binding 'replica-budget': at most 3 replicas in default"
        ),
        "{}",
        text(&o.stderr)
    );
}

const HARDENED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hardened
  namespace: secure
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: app
    image: registry.example.com/app:1.0
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
"#;

#[test]
fn pod_security_levels_from_namespace_labels() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "secure"]);
    c.ok(&[
        "label",
        "namespace",
        "secure",
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    let o = c.kubectl_in(
        &["run", "nginx", "--image=nginx:1.27", "-n", "secure"],
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(
            "pods \"nginx\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        ),
        "{}",
        text(&o.stderr)
    );
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(HARDENED));
    assert!(o.status.success(), "{}", text(&o.stderr));
    // workloads are created, with a warning about their pods
    let o = c.kubectl_in(
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "-n",
            "secure",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{}",
        text(&o.stderr)
    );
    // baseline refuses privilege, allows the rest
    c.ok(&["create", "namespace", "team"]);
    c.ok(&[
        "label",
        "namespace",
        "team",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    let privileged = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"root","namespace":"team"},
        "spec":{"containers":[{"name":"shell","image":"busybox:1.36.1","securityContext":{"privileged":true}}]}}"#;
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(privileged));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(
            "violates PodSecurity \"baseline:latest\": privileged (container \"shell\" must not set securityContext.privileged=true)"
        ),
        "{}",
        text(&o.stderr)
    );
    c.ok(&["run", "plain", "--image=nginx:1.27", "-n", "team"]);
}

const LIMITS: &str = r#"
apiVersion: v1
kind: LimitRange
metadata:
  name: container-limits
  namespace: limited
spec:
  limits:
  - type: Container
    default:
      cpu: 500m
      memory: 256Mi
    defaultRequest:
      cpu: 100m
      memory: 128Mi
    max:
      cpu: "1"
    min:
      memory: 64Mi
"#;

#[test]
fn limit_ranges_default_and_bound_new_pods() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "limited"]);
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(LIMITS));
    assert!(o.status.success(), "{}", text(&o.stderr));
    c.ok(&["run", "plain", "--image=nginx:1.27", "-n", "limited"]);
    let res = c.ok(&[
        "get",
        "pod",
        "plain",
        "-n",
        "limited",
        "-o",
        "jsonpath={.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.requests.memory} {.spec.containers[0].resources.limits.cpu} {.spec.containers[0].resources.limits.memory}",
    ]);
    assert_eq!(res, "100m 128Mi 500m 256Mi");
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "plain",
            "-n",
            "limited",
            "-o",
            "jsonpath={.metadata.annotations.kubernetes\\.io/limit-ranger}"
        ]),
        "LimitRanger plugin set: cpu, memory request for container plain; cpu, memory limit for container plain"
    );
    let o = c.kubectl_in(
        &["run", "greedy", "--image=nginx:1.27", "-n", "limited", "--overrides", r#"{"spec":{"containers":[{"name":"greedy","image":"nginx:1.27","resources":{"limits":{"cpu":"2"}}}]}}"#],
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(
            "pods \"greedy\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{}",
        text(&o.stderr)
    );
    // other namespaces are not limited
    c.ok(&["run", "free", "--image=nginx:1.27"]);
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "free",
            "-o",
            "jsonpath={.spec.containers[0].resources}"
        ]),
        "{}"
    );
}

const QUOTA: &str = r#"
apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute
  namespace: quota
spec:
  hard:
    pods: "2"
    limits.cpu: "1"
    configmaps: "3"
"#;

#[test]
fn resource_quotas_refuse_what_goes_past_them_and_report_usage() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "quota"]);
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(QUOTA));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let run = |name: &str, cpu: &str| {
        let overrides = format!(
            r#"{{"spec":{{"containers":[{{"name":"{name}","image":"nginx:1.27","resources":{{"limits":{{"cpu":"{cpu}"}}}}}}]}}}}"#
        );
        c.kubectl_in(
            &[
                "run",
                name,
                "--image=nginx:1.27",
                "-n",
                "quota",
                "--overrides",
                &overrides,
            ],
            None,
        )
    };
    let o = c.kubectl_in(&["run", "bare", "--image=nginx:1.27", "-n", "quota"], None);
    assert!(
        text(&o.stderr).contains(
            "pods \"bare\" is forbidden: failed quota: compute: must specify limits.cpu for: bare"
        ),
        "{}",
        text(&o.stderr)
    );
    assert!(run("a", "600m").status.success());
    let o = run("b", "500m");
    assert!(
        text(&o.stderr).contains(
            "pods \"b\" is forbidden: exceeded quota: compute, requested: limits.cpu=500m, used: limits.cpu=600m, limited: limits.cpu=1"
        ),
        "{}",
        text(&o.stderr)
    );
    assert!(run("b", "400m").status.success());
    let o = run("c", "0");
    assert!(
        text(&o.stderr)
            .contains("exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"),
        "{}",
        text(&o.stderr)
    );
    // the quota's status follows what the namespace holds
    let used = |c: &Cluster| {
        c.ok(&[
            "get",
            "resourcequota",
            "compute",
            "-n",
            "quota",
            "-o",
            "jsonpath={.status.used.pods} {.status.used.limits\\.cpu} {.status.used.configmaps}",
        ])
    };
    c.wait_for("the quota's usage", Duration::from_secs(10), || {
        used(&c) == "2 1 0"
    });
    c.ok(&[
        "delete",
        "pod",
        "a",
        "-n",
        "quota",
        "--grace-period=0",
        "--force",
    ]);
    c.wait_for("the quota's usage to drop", Duration::from_secs(10), || {
        used(&c) == "1 400m 0"
    });
    assert!(run("c", "100m").status.success());
}
