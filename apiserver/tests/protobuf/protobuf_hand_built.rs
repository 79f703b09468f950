//! Hand-built protobuf bodies for what kubectl's typed commands do not send:
//! a Deployment with probes, volumes and affinity, an Eviction with
//! deleteOptions, access reviews, a Lease with MicroTimes, a Secret with
//! binary data, a Node with status, an Event, a Binding, Endpoints and a Scale.
//! Field numbers come from k8s.io/api's generated.proto.

use apiserver::protobuf::decode_request;
use serde_json::{Value, json};

use crate::assert_valid;
use crate::builder::{Msg, envelope, int_val, object_meta, quantity, str_val, time};

/// 2024-01-02T15:04:05Z
const T: i64 = 1_704_207_845;

fn decode(api_version: &str, kind: &str, raw: Msg) -> Value {
    decode_request(&envelope(api_version, kind, raw)).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

fn labels(m: Msg, field: u32, pairs: &[(&str, &str)]) -> Msg {
    pairs.iter().fold(m, |m, (k, v)| m.entry(field, k, v))
}

/// LabelSelector {1 matchLabels, 2 matchExpressions {1 key, 2 operator, 3 values}}.
fn selector(pairs: &[(&str, &str)]) -> Msg {
    labels(Msg::new(), 1, pairs)
}

/// Container with everything client-go writes for value fields.
fn container(name: &str, image: &str) -> Msg {
    Msg::new()
        .str(1, name)
        .str(2, image)
        .str(5, "")
        .msg(8, Msg::new())
        .str(13, "")
        .str(14, "")
        .int(16, 0)
        .int(17, 0)
        .int(18, 0)
        .str(20, "")
}

fn probe(handler: Msg) -> Msg {
    // Probe {1 handler (inline ProbeHandler), 2 initialDelaySeconds, 3 timeoutSeconds, 4 periodSeconds, 5 successThreshold, 6 failureThreshold}
    Msg::new()
        .msg(1, handler)
        .int(2, 0)
        .int(3, 0)
        .int(4, 0)
        .int(5, 0)
        .int(6, 0)
}

fn rich_pod_spec() -> Msg {
    let web = container("web", "nginx:1.27")
        .strs(3, &["nginx"])
        .strs(4, &["-g", "daemon off;"])
        // ports: ContainerPort {1 name, 2 hostPort, 3 containerPort, 4 protocol, 5 hostIP}
        .msg(
            6,
            Msg::new()
                .str(1, "http")
                .int(2, 0)
                .int(3, 8080)
                .str(4, "TCP")
                .str(5, ""),
        )
        // env: EnvVar {1 name, 2 value, 3 valueFrom {1 fieldRef {1 apiVersion, 2 fieldPath}}}
        .msg(7, Msg::new().str(1, "X").str(2, "1"))
        .msg(
            7,
            Msg::new().str(1, "POD").str(2, "").msg(
                3,
                Msg::new().msg(1, Msg::new().str(1, "v1").str(2, "metadata.name")),
            ),
        )
        // resources: ResourceRequirements {1 limits, 2 requests}
        .msg(
            8,
            Msg::new()
                .entry_msg(1, "cpu", quantity("500m"))
                .entry_msg(1, "memory", quantity("128Mi"))
                .entry_msg(2, "cpu", quantity("100m")),
        )
        // volumeMounts: VolumeMount {1 name, 2 readOnly, 3 mountPath, 4 subPath, 6 subPathExpr}
        .msg(
            9,
            Msg::new()
                .str(1, "config")
                .bool(2, true)
                .str(3, "/etc/cfg")
                .str(4, "")
                .str(6, ""),
        )
        .msg(
            9,
            Msg::new()
                .str(1, "data")
                .bool(2, false)
                .str(3, "/data")
                .str(4, "")
                .str(6, ""),
        )
        // livenessProbe: httpGet {1 path, 2 port, 3 host, 4 scheme}
        .msg(
            10,
            probe(
                Msg::new().msg(
                    2,
                    Msg::new()
                        .str(1, "/healthz")
                        .msg(2, int_val(8080))
                        .str(3, "")
                        .str(4, "HTTP"),
                ),
            )
            .int(2, 5)
            .int(4, 10),
        )
        // readinessProbe: tcpSocket {1 port, 2 host}
        .msg(
            11,
            probe(Msg::new().msg(3, Msg::new().msg(1, str_val("http")).str(2, ""))),
        )
        // startupProbe: exec {1 command}
        .msg(
            22,
            probe(Msg::new().msg(1, Msg::new().strs(1, &["cat", "/tmp/ready"]))).int(6, 30),
        )
        // securityContext: 1 capabilities {2 drop}, 4 runAsUser, 5 runAsNonRoot, 6 readOnlyRootFilesystem, 7 allowPrivilegeEscalation
        .msg(
            15,
            Msg::new()
                .msg(1, Msg::new().strs(2, &["ALL"]))
                .int(4, 1000)
                .bool(5, true)
                .bool(6, true)
                .bool(7, false),
        )
        .str(14, "IfNotPresent");
    let init = container("init", "busybox").strs(3, &["sh", "-c", "true"]);
    // Volume {1 name, 2 volumeSource (inline)}; VolumeSource {2 emptyDir, 6 secret, 19 configMap}
    let config_volume = Msg::new().str(1, "config").msg(
        2,
        Msg::new().msg(
            19,
            // ConfigMapVolumeSource {1 localObjectReference {1 name}, 2 items, 3 defaultMode}
            Msg::new()
                .msg(1, Msg::new().str(1, "cfg"))
                .msg(2, Msg::new().str(1, "a").str(2, "a.txt").int(3, 0o400))
                .int(3, 0o644),
        ),
    );
    let data_volume = Msg::new().str(1, "data").msg(
        2,
        Msg::new().msg(2, Msg::new().str(1, "").msg(2, quantity("1Gi"))),
    );
    let secret_volume = Msg::new()
        .str(1, "creds")
        .msg(2, Msg::new().msg(6, Msg::new().str(1, "s").bool(4, true)));
    // Affinity {1 nodeAffinity, 3 podAntiAffinity}
    let term = |key: &str, value: &str| {
        // NodeSelectorTerm {1 matchExpressions {1 key, 2 operator, 3 values}}
        Msg::new().msg(1, Msg::new().str(1, key).str(2, "In").strs(3, &[value]))
    };
    let affinity = Msg::new()
        .msg(
            1,
            Msg::new()
                .msg(1, Msg::new().msg(1, term("kubernetes.io/os", "linux")))
                .msg(2, Msg::new().int(1, 10).msg(2, term("disk", "ssd"))),
        )
        .msg(
            3,
            Msg::new().msg(
                2,
                // WeightedPodAffinityTerm {1 weight, 2 podAffinityTerm {1 labelSelector, 3 topologyKey}}
                Msg::new().int(1, 100).msg(
                    2,
                    Msg::new()
                        .msg(1, selector(&[("app", "web")]))
                        .str(3, "kubernetes.io/hostname"),
                ),
            ),
        );
    // PodSpec
    Msg::new()
        .msg(1, config_volume)
        .msg(1, data_volume)
        .msg(1, secret_volume)
        .msg(2, web)
        .str(3, "Always")
        .int(4, 0)
        .str(6, "ClusterFirst")
        .entry(7, "disktype", "ssd")
        .str(8, "")
        .str(9, "")
        .str(10, "")
        .bool(11, false)
        .bool(12, false)
        .bool(13, false)
        // securityContext: PodSecurityContext {4 supplementalGroups (packed), 5 fsGroup}
        .msg(14, Msg::new().packed(4, &[3000, 4000]).int(5, 2000))
        .str(16, "")
        .str(17, "")
        .msg(18, affinity)
        .str(19, "")
        .msg(20, init)
        // tolerations: Toleration {1 key, 2 operator, 3 value, 4 effect, 5 tolerationSeconds}
        .msg(
            22,
            Msg::new()
                .str(1, "dedicated")
                .str(2, "Equal")
                .str(3, "web")
                .str(4, "NoSchedule"),
        )
        .msg(
            22,
            Msg::new()
                .str(1, "")
                .str(2, "Exists")
                .str(3, "")
                .str(4, "NoExecute")
                .int(5, 300),
        )
        .str(24, "")
        // topologySpreadConstraints: {1 maxSkew, 2 topologyKey, 3 whenUnsatisfiable, 4 labelSelector}
        .msg(
            33,
            Msg::new()
                .int(1, 1)
                .str(2, "topology.kubernetes.io/zone")
                .str(3, "ScheduleAnyway")
                .msg(4, selector(&[("app", "web")])),
        )
}

fn rich_pod_spec_json() -> Value {
    json!({
        "volumes": [
            {"name": "config", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "a.txt", "mode": 256}], "defaultMode": 420}},
            {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "creds", "secret": {"secretName": "s", "optional": true}}
        ],
        "containers": [{
            "name": "web",
            "image": "nginx:1.27",
            "command": ["nginx"],
            "args": ["-g", "daemon off;"],
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "X", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
            "volumeMounts": [{"name": "config", "readOnly": true, "mountPath": "/etc/cfg"}, {"name": "data", "mountPath": "/data"}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 5, "periodSeconds": 10},
            "readinessProbe": {"tcpSocket": {"port": "http"}},
            "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "failureThreshold": 30},
            "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsUser": 1000, "runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
            "imagePullPolicy": "IfNotPresent"
        }],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 0,
        "dnsPolicy": "ClusterFirst",
        "nodeSelector": {"disktype": "ssd"},
        "securityContext": {"supplementalGroups": [3000, 4000], "fsGroup": 2000},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]
            },
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}}]
            }
        },
        "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"], "resources": {}}],
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
            {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]
    })
}

#[test]
fn protobuf_deployment_with_probes_volumes_and_affinity() {
    let template = Msg::new()
        .msg(1, labels(object_meta("", ""), 11, &[("app", "web")]))
        .msg(2, rich_pod_spec());
    // DeploymentSpec {1 replicas, 2 selector, 3 template, 4 strategy {1 type, 2 rollingUpdate {1 maxUnavailable, 2 maxSurge}},
    // 5 minReadySeconds, 6 revisionHistoryLimit, 7 paused, 9 progressDeadlineSeconds}
    let spec = Msg::new()
        .int(1, 2)
        .msg(
            2,
            selector(&[("app", "web")]).msg(
                2,
                Msg::new().str(1, "tier").str(2, "NotIn").strs(3, &["db"]),
            ),
        )
        .msg(3, template)
        .msg(
            4,
            Msg::new()
                .str(1, "RollingUpdate")
                .msg(2, Msg::new().msg(1, int_val(0)).msg(2, str_val("25%"))),
        )
        .int(5, 0)
        .int(6, 5)
        .bool(7, false)
        .int(9, 600);
    let raw = Msg::new()
        .msg(
            1,
            labels(object_meta("web", "default"), 12, &[("team", "a")]),
        )
        .msg(2, spec)
        .msg(3, Msg::new().int(1, 0).int(2, 0));
    let d = decode("apps/v1", "Deployment", raw);
    let expected = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": rich_pod_spec_json()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 600
        },
        "status": {}
    });
    assert_eq!(d, expected, "decoded\n{d:#}");
    assert_valid(&d);
}

#[test]
fn protobuf_pod_and_replica_set_share_the_pod_spec() {
    let pod = decode(
        "v1",
        "Pod",
        Msg::new()
            .msg(1, object_meta("p", ""))
            .msg(2, rich_pod_spec())
            // PodStatus {1 phase, 7 startTime}
            .msg(3, Msg::new().str(1, "").msg(7, Msg::new())),
    );
    assert_eq!(pod["spec"], rich_pod_spec_json());
    assert_eq!(
        pod["status"],
        json!({}),
        "empty phase and unset startTime are left out"
    );
    assert_valid(&pod);
    // ReplicaSetStatus {1 replicas (no omitempty), 2 fullyLabeledReplicas, 3 observedGeneration}
    let rs = decode(
        "apps/v1",
        "ReplicaSet",
        Msg::new()
            .msg(1, labels(object_meta("rs", ""), 11, &[("app", "web")]))
            .msg(
                2,
                Msg::new()
                    .int(1, 1)
                    .msg(2, selector(&[("app", "web")]))
                    .msg(
                        3,
                        Msg::new()
                            .msg(1, labels(object_meta("", ""), 11, &[("app", "web")]))
                            .msg(2, rich_pod_spec()),
                    )
                    .int(4, 0),
            )
            .msg(3, Msg::new().int(1, 0).int(2, 0).int(3, 0)),
    );
    assert_eq!(rs["status"], json!({"replicas": 0}));
    assert_eq!(
        rs["spec"]["template"]["spec"]["affinity"],
        rich_pod_spec_json()["affinity"]
    );
    assert_valid(&rs);
}

#[test]
fn protobuf_eviction_with_delete_options() {
    // Eviction {1 metadata, 2 deleteOptions}; DeleteOptions {1 gracePeriodSeconds, 2 preconditions {1 uid, 2 resourceVersion},
    // 3 orphanDependents, 4 propagationPolicy, 5 dryRun}
    let raw = Msg::new().msg(1, object_meta("web-1", "default")).msg(
        2,
        Msg::new()
            .int(1, 0)
            .msg(2, Msg::new().str(1, "p1"))
            .str(4, "Background")
            .strs(5, &["All"]),
    );
    let e = decode("policy/v1", "Eviction", raw);
    let expected = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "p1"}, "propagationPolicy": "Background", "dryRun": ["All"]}
    });
    assert_eq!(e, expected);
    let typed: k8s_openapi::api::policy::v1::Eviction =
        serde_json::from_value(e).expect("korral's Eviction type");
    assert_eq!(
        typed.delete_options.and_then(|o| o.grace_period_seconds),
        Some(0)
    );
}

#[test]
fn protobuf_delete_options_and_scale() {
    let o = decode(
        "v1",
        "DeleteOptions",
        Msg::new()
            .int(1, 30)
            .bool(3, false)
            .str(4, "Foreground")
            .bool(6, false),
    );
    assert_eq!(
        o,
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 30, "orphanDependents": false,
               "propagationPolicy": "Foreground", "ignoreStoreReadErrorWithClusterBreakingPotential": false})
    );
    let typed: k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions =
        serde_json::from_value(o).expect("korral's DeleteOptions type");
    assert_eq!(typed.propagation_policy.as_deref(), Some("Foreground"));
    // Scale {1 metadata, 2 spec {1 replicas}, 3 status {1 replicas, 2 selector}}
    let s = decode(
        "autoscaling/v1",
        "Scale",
        Msg::new()
            .msg(1, object_meta("web", "default").str(6, "5"))
            .msg(2, Msg::new().int(1, 4))
            .msg(3, Msg::new().int(1, 0).str(2, "")),
    );
    assert_eq!(
        s,
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
               "metadata": {"name": "web", "namespace": "default", "resourceVersion": "5"},
               "spec": {"replicas": 4}, "status": {"replicas": 0}})
    );
    let typed: k8s_openapi::api::autoscaling::v1::Scale =
        serde_json::from_value(s).expect("autoscaling/v1 Scale");
    assert_eq!(typed.spec.and_then(|s| s.replicas), Some(4));
}

#[test]
fn protobuf_self_subject_access_reviews() {
    // SelfSubjectAccessReview {1 metadata, 2 spec {1 resourceAttributes, 2 nonResourceAttributes {1 path, 2 verb}}, 3 status {1 allowed, 2 reason, 3 evaluationError, 4 denied}}
    let raw = Msg::new()
        .msg(1, object_meta("", ""))
        .msg(
            2,
            Msg::new().msg(2, Msg::new().str(1, "/healthz").str(2, "get")),
        )
        .msg(
            3,
            Msg::new()
                .bool(1, false)
                .str(2, "")
                .str(3, "")
                .bool(4, false),
        );
    let r = decode("authorization.k8s.io/v1", "SelfSubjectAccessReview", raw);
    assert_eq!(
        r,
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
               "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}, "status": {"allowed": false}})
    );
    // ResourceAttributes {1 namespace, 2 verb, 3 group, 4 version, 5 resource, 6 subresource, 7 name}
    let raw = Msg::new().msg(1, object_meta("", "")).msg(
        2,
        Msg::new().msg(
            1,
            Msg::new()
                .str(1, "kube-system")
                .str(2, "get")
                .str(3, "apps")
                .str(4, "")
                .str(5, "deployments")
                .str(6, "scale")
                .str(7, "coredns"),
        ),
    );
    let r = decode("authorization.k8s.io/v1", "SelfSubjectAccessReview", raw);
    assert_eq!(
        r["spec"]["resourceAttributes"],
        json!({"namespace": "kube-system", "verb": "get", "group": "apps", "resource": "deployments", "subresource": "scale", "name": "coredns"})
    );
}

#[test]
fn protobuf_lease_with_micro_times() {
    // Lease {1 metadata, 2 spec {1 holderIdentity, 2 leaseDurationSeconds, 3 acquireTime, 4 renewTime, 5 leaseTransitions}}
    let raw = Msg::new()
        .msg(1, object_meta("node-1", "kube-node-lease"))
        .msg(
            2,
            Msg::new()
                .str(1, "node-1")
                .int(2, 40)
                .msg(3, time(T, 123_456_789))
                .msg(4, time(T + 10, 0))
                .int(5, 0),
        );
    let l = decode("coordination.k8s.io/v1", "Lease", raw);
    assert_eq!(
        l,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
               "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                        "acquireTime": "2024-01-02T15:04:05.123456Z", "renewTime": "2024-01-02T15:04:15.000000Z",
                        "leaseTransitions": 0}})
    );
    assert_valid(&l);
}

#[test]
fn protobuf_secret_with_binary_data() {
    // Secret {1 metadata, 2 data, 3 type, 4 stringData, 5 immutable}
    let raw = Msg::new()
        .msg(1, object_meta("bin", ""))
        .entry_bytes(2, "blob", &[0, 1, 2, 0xfe, 0xff])
        .entry_bytes(2, "empty", &[])
        .str(3, "Opaque")
        .entry(4, "plain", "text")
        .bool(5, true);
    let s = decode("v1", "Secret", raw);
    assert_eq!(
        s,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bin"},
               "data": {"blob": "AAEC/v8=", "empty": ""}, "type": "Opaque", "stringData": {"plain": "text"}, "immutable": true})
    );
    assert_valid(&s);
}

#[test]
fn protobuf_node_with_status() {
    // NodeSpec {1 podCIDR, 2 externalID, 3 providerID, 4 unschedulable, 5 taints {1 key, 2 value, 3 effect, 4 timeAdded}, 7 podCIDRs}
    let spec = Msg::new()
        .str(1, "10.244.1.0/24")
        .str(2, "")
        .str(3, "")
        .bool(4, true)
        .msg(
            5,
            Msg::new()
                .str(1, "node.kubernetes.io/unreachable")
                .str(2, "")
                .str(3, "NoExecute")
                .msg(4, time(T, 0)),
        )
        .strs(7, &["10.244.1.0/24"]);
    // NodeStatus {1 capacity, 2 allocatable, 3 phase, 4 conditions, 5 addresses, 6 daemonEndpoints, 7 nodeInfo}
    let info = Msg::new()
        .str(1, "m")
        .str(2, "u")
        .str(3, "b")
        .str(4, "6.1")
        .str(5, "Debian")
        .str(6, "korral://1")
        .str(7, "v1.32.0")
        .str(8, "")
        .str(9, "linux")
        .str(10, "amd64");
    let status = Msg::new()
        .entry_msg(1, "cpu", quantity("2"))
        .entry_msg(1, "pods", quantity("110"))
        .entry_msg(2, "cpu", quantity("1900m"))
        .str(3, "")
        // NodeCondition {1 type, 2 status, 3 lastHeartbeatTime, 4 lastTransitionTime, 5 reason, 6 message}
        .msg(
            4,
            Msg::new()
                .str(1, "Ready")
                .str(2, "True")
                .msg(3, time(T, 0))
                .msg(4, Msg::new())
                .str(5, "KubeletReady")
                .str(6, ""),
        )
        // NodeAddress {1 type, 2 address}
        .msg(5, Msg::new().str(1, "InternalIP").str(2, "10.0.0.5"))
        // NodeDaemonEndpoints {1 kubeletEndpoint {1 Port}}
        .msg(6, Msg::new().msg(1, Msg::new().int(1, 10250)))
        .msg(7, info);
    let n = decode(
        "v1",
        "Node",
        Msg::new()
            .msg(1, object_meta("n1", ""))
            .msg(2, spec)
            .msg(3, status),
    );
    assert_eq!(
        n,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
               "spec": {"podCIDR": "10.244.1.0/24", "unschedulable": true, "podCIDRs": ["10.244.1.0/24"],
                        "taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2024-01-02T15:04:05Z"}]},
               "status": {"capacity": {"cpu": "2", "pods": "110"}, "allocatable": {"cpu": "1900m"},
                          "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-01-02T15:04:05Z", "reason": "KubeletReady"}],
                          "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                          "nodeInfo": {"machineID": "m", "systemUUID": "u", "bootID": "b", "kernelVersion": "6.1", "osImage": "Debian",
                                       "containerRuntimeVersion": "korral://1", "kubeletVersion": "v1.32.0", "kubeProxyVersion": "",
                                       "operatingSystem": "linux", "architecture": "amd64"}}})
    );
    assert_valid(&n);
}

#[test]
fn protobuf_event_binding_endpoints_namespace() {
    // ObjectReference {1 kind, 2 namespace, 3 name, 4 uid, 5 apiVersion, 6 resourceVersion, 7 fieldPath}
    let pod_ref = Msg::new()
        .str(1, "Pod")
        .str(2, "default")
        .str(3, "p")
        .str(4, "")
        .str(5, "v1")
        .str(6, "")
        .str(7, "");
    // Event {1 metadata, 2 involvedObject, 3 reason, 4 message, 5 source {1 component, 2 host}, 6 firstTimestamp, 7 lastTimestamp,
    // 8 count, 9 type, 10 eventTime, 11 series {1 count, 2 lastObservedTime}, 12 action, 14 reportingComponent, 15 reportingInstance}
    let event = Msg::new()
        .msg(1, object_meta("p.1", "default"))
        .msg(2, pod_ref.clone())
        .str(3, "Scheduled")
        .str(4, "assigned")
        .msg(5, Msg::new().str(1, "").str(2, ""))
        .msg(6, time(T, 0))
        .msg(7, Msg::new())
        .int(8, 0)
        .str(9, "Normal")
        .msg(10, time(T, 5_000))
        .msg(11, Msg::new().int(1, 2).msg(2, time(T, 0)))
        .str(12, "Binding")
        .str(14, "default-scheduler")
        .str(15, "");
    let e = decode("v1", "Event", event);
    assert_eq!(
        e,
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1", "namespace": "default"},
               "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "apiVersion": "v1"},
               "reason": "Scheduled", "message": "assigned", "source": {}, "firstTimestamp": "2024-01-02T15:04:05Z",
               "type": "Normal", "eventTime": "2024-01-02T15:04:05.000005Z",
               "series": {"count": 2, "lastObservedTime": "2024-01-02T15:04:05.000000Z"},
               "action": "Binding", "reportingComponent": "default-scheduler",
               // no omitempty on reportingInstance: Go writes ""
               "reportingInstance": ""})
    );
    assert_valid(&e);
    // Binding {1 metadata, 2 target}
    let b = decode(
        "v1",
        "Binding",
        Msg::new()
            .msg(1, object_meta("p", "default"))
            .msg(2, Msg::new().str(1, "Node").str(3, "n1")),
    );
    assert_eq!(
        b,
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p", "namespace": "default"}, "target": {"kind": "Node", "name": "n1"}})
    );
    let typed: k8s_openapi::api::core::v1::Binding =
        serde_json::from_value(b).expect("korral's Binding type");
    assert_eq!(typed.target.name.as_deref(), Some("n1"));
    // Endpoints {1 metadata, 2 subsets {1 addresses {1 ip, 2 targetRef, 3 hostname, 4 nodeName}, 3 ports {1 name, 2 port, 3 protocol}}}
    let ep = decode(
        "v1",
        "Endpoints",
        Msg::new().msg(1, object_meta("web", "")).msg(
            2,
            Msg::new()
                .msg(
                    1,
                    Msg::new()
                        .str(1, "10.244.1.7")
                        .msg(2, pod_ref)
                        .str(3, "")
                        .str(4, "n1"),
                )
                .msg(3, Msg::new().str(1, "").int(2, 80).str(3, "TCP")),
        ),
    );
    assert_eq!(
        ep["subsets"],
        json!([{"addresses": [{"ip": "10.244.1.7", "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "p", "apiVersion": "v1"}}],
                "ports": [{"port": 80, "protocol": "TCP"}]}])
    );
    assert_valid(&ep);
    // Namespace {1 metadata, 2 spec {1 finalizers}, 3 status {1 phase}}
    let ns = decode(
        "v1",
        "Namespace",
        Msg::new()
            .msg(1, object_meta("team-a", ""))
            .msg(2, Msg::new().strs(1, &["kubernetes"]))
            .msg(3, Msg::new().str(1, "")),
    );
    assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
    assert_valid(&ns);
}
