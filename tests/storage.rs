//! Persistent storage end to end, with the real kubectl against a real
//! `korral server`: claims bind to pre-created volumes (smallest fit,
//! `selector`, `volumeName`; phases, annotations, reclaim Retain and a
//! `Delete` nothing can carry out, pvc- and pv-protection while a pod uses
//! the claim), the default StorageClass `local-path`
//! fills classless claims, the scheduler's VolumeBinding (unbound Immediate
//! claims, volume node affinity, `selected-node` for WaitForFirstConsumer)
//! with simulated nodes, a StatefulSet's claims provisioned and bound; and
//! on a `korral node` (process runtime, and containerd + runc with bind
//! mounts) a pod writes into a local-path claim, a later pod reads it, and
//! deleting the claim removes volume and directory.

use crate::node_support;
use crate::support;

use std::time::Duration;

use node_support::containerd::Containerd;
use node_support::{
    NodeProc, containerd_node_args, events_of, finished_log, jsonpath, node_args, wait_node,
};
use serde_json::Value;
use support::simulated_nodes::SimulatedNodes;
use support::{Server, wait_for};

const LONG: Duration = Duration::from_secs(60);

fn pv(name: &str, size: &str, class: &str, reclaim: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\n  labels: {{size: \"{size}\"}}\nspec:\n  capacity: {{storage: {size}}}\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"{class}\"\n  persistentVolumeReclaimPolicy: {reclaim}\n  hostPath: {{path: /tmp/korral-test-{name}}}\n{extra}"
    )
}

fn pvc(name: &str, size: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: {size}}}}}\n{extra}"
    )
}

fn get(s: &Server, kind: &str, name: &str) -> Value {
    let o = s.kubectl(&["get", kind, name, "-o", "json"]);
    if !o.status.success() {
        return Value::Null;
    }
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn phase(s: &Server, kind: &str, name: &str) -> String {
    get(s, kind, name)["status"]["phase"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn wait_phase(s: &Server, kind: &str, name: &str, want: &str) {
    wait_for(&format!("{kind} {name} to be {want}"), LONG, || {
        phase(s, kind, name) == want
    });
}

#[test]
fn claims_bind_to_volumes_by_size_selector_and_name_and_are_reclaimed() {
    let s = Server::start();
    let manual = "---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: manual}\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: Immediate\n";
    s.apply(manual);
    for yaml in [
        pv("small", "1Gi", "manual", "Retain", ""),
        pv("medium", "2Gi", "manual", "Retain", ""),
        pv(
            "gold",
            "5Gi",
            "manual",
            "Retain",
            "  volumeMode: Filesystem\n",
        ),
        pv("named", "3Gi", "manual", "Retain", ""),
        pv("doomed", "1Gi", "other", "Delete", ""),
    ] {
        s.apply(&yaml);
    }
    s.ok(&["label", "pv", "gold", "tier=gold"]);
    for name in ["small", "medium", "gold", "named", "doomed"] {
        wait_phase(&s, "pv", name, "Available");
    }
    // smallest fit; a selector; a pre-bound volumeName; no class at all
    s.apply(&pvc("by-size", "512Mi", "  storageClassName: manual\n"));
    s.apply(&pvc(
        "by-label",
        "1Gi",
        "  storageClassName: manual\n  selector: {matchLabels: {tier: gold}}\n",
    ));
    s.apply(&pvc(
        "by-name",
        "1Gi",
        "  storageClassName: manual\n  volumeName: named\n",
    ));
    s.apply(&pvc("to-delete", "1Gi", "  storageClassName: other\n"));
    s.apply(&pvc(
        "nothing-fits",
        "100Gi",
        "  storageClassName: manual\n",
    ));
    s.apply(&pvc("classless", "1Gi", "  storageClassName: \"\"\n"));
    s.apply(&pvc("defaulted", "1Gi", ""));
    for (claim, volume) in [
        ("by-size", "small"),
        ("by-label", "gold"),
        ("by-name", "named"),
        ("to-delete", "doomed"),
    ] {
        wait_phase(&s, "pvc", claim, "Bound");
        wait_phase(&s, "pv", volume, "Bound");
        let c = get(&s, "pvc", claim);
        let v = get(&s, "pv", volume);
        assert_eq!(c["spec"]["volumeName"], volume, "{c}");
        assert_eq!(
            c["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"], "yes",
            "{c}"
        );
        assert_eq!(c["status"]["capacity"], v["spec"]["capacity"], "{c}");
        assert_eq!(c["status"]["accessModes"][0], "ReadWriteOnce", "{c}");
        assert_eq!(v["spec"]["claimRef"]["name"], claim, "{v}");
        assert_eq!(v["spec"]["claimRef"]["uid"], c["metadata"]["uid"], "{v}");
        assert_eq!(
            v["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"], "yes",
            "{v}"
        );
        // the controller chose the volume, unless the claim named it
        let chose = c["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"].clone();
        if claim == "by-name" {
            assert!(chose.is_null(), "{c}");
        } else {
            assert_eq!(chose, "yes", "{c}");
        }
    }
    assert_eq!(phase(&s, "pv", "medium"), "Available");
    wait_phase(&s, "pvc", "nothing-fits", "Pending");
    wait_phase(&s, "pvc", "classless", "Pending");
    wait_for("FailedBinding on the classless claim", LONG, || {
        events_of(&s, "classless").contains(
            "FailedBinding: no persistent volumes available for this claim and no storage class is set",
        )
    });
    // DefaultStorageClass admission: the built-in local-path class, which waits for a consumer
    let sc = get(&s, "storageclass", "local-path");
    assert_eq!(
        sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"], "true",
        "{sc}"
    );
    assert_eq!(sc["provisioner"], "korral.dev/local-path");
    assert_eq!(sc["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(
        get(&s, "pvc", "defaulted")["spec"]["storageClassName"],
        "local-path"
    );
    assert_eq!(
        get(&s, "pvc", "classless")["spec"]["storageClassName"],
        "",
        "an explicit empty class stays"
    );
    wait_phase(&s, "pvc", "defaulted", "Pending");
    wait_for("WaitForFirstConsumer on the defaulted claim", LONG, || {
        events_of(&s, "defaulted").contains(
            "WaitForFirstConsumer: waiting for first consumer to be created before binding",
        )
    });

    // reclaim: Retain keeps a Released volume; Delete with nothing to delete it fails
    s.ok(&["delete", "pvc", "by-size", "to-delete"]);
    wait_phase(&s, "pv", "small", "Released");
    wait_phase(&s, "pv", "doomed", "Failed");
    let doomed = get(&s, "pv", "doomed");
    assert_eq!(
        doomed["status"]["message"],
        "error getting deleter volume plugin for volume \"doomed\": no deletable volume plugin matched",
        "{doomed}"
    );
    // a Released volume keeps its claimRef: a new claim does not get it
    s.apply(&pvc("after", "512Mi", "  storageClassName: manual\n"));
    wait_phase(&s, "pvc", "after", "Bound");
    assert_eq!(get(&s, "pvc", "after")["spec"]["volumeName"], "medium");
    assert_eq!(phase(&s, "pv", "small"), "Released");

    // in-use protection: a claim a pod uses outlives its deletion until the pod goes
    for (kind, name, finalizer) in [
        ("pvc", "by-name", "kubernetes.io/pvc-protection"),
        ("pv", "named", "kubernetes.io/pv-protection"),
    ] {
        assert_eq!(
            get(&s, kind, name)["metadata"]["finalizers"],
            serde_json::json!([finalizer])
        );
    }
    s.apply(&pod_using("user", "by-name"));
    s.ok(&["delete", "pvc", "by-name", "--wait=false"]);
    wait_for("by-name to be terminating", LONG, || {
        !get(&s, "pvc", "by-name")["metadata"]["deletionTimestamp"].is_null()
    });
    // a bound volume is protected too
    s.ok(&["delete", "pv", "named", "--wait=false"]);
    s.ok(&["delete", "pv", "small"]);
    assert!(get(&s, "pv", "small").is_null(), "a Released volume goes");
    assert_eq!(phase(&s, "pvc", "by-name"), "Bound");
    assert_eq!(phase(&s, "pv", "named"), "Bound");
    s.ok(&["delete", "pod", "user", "--grace-period=0", "--force"]);
    wait_for("by-name to be gone", LONG, || {
        get(&s, "pvc", "by-name").is_null()
    });
    wait_for("named to be gone once Released", LONG, || {
        get(&s, "pv", "named").is_null()
    });
}

const STS: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: busybox, command: ["sleep", "3600"], volumeMounts: [{name: data, mountPath: /data}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

fn pod_using(name: &str, claim: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: c, image: busybox, command: [sleep, \"3600\"], volumeMounts: [{{name: v, mountPath: /v}}]}}\n  volumes: [{{name: v, persistentVolumeClaim: {{claimName: {claim}}}}}]\n"
    )
}

#[test]
fn the_scheduler_places_pods_where_their_volumes_are() {
    let s = Server::start();
    let _nodes = SimulatedNodes::start(&s, "sim", 3);

    // a StatefulSet's claims: provisioned on the node each pod went to, bound
    s.apply(STS);
    for i in 0..2 {
        let claim = format!("data-db-{i}");
        let pod = format!("db-{i}");
        wait_phase(&s, "pvc", &claim, "Bound");
        wait_phase(&s, "pod", &pod, "Running");
        let c = get(&s, "pvc", &claim);
        let node = get(&s, "pod", &pod)["spec"]["nodeName"].clone();
        let ann = &c["metadata"]["annotations"];
        assert_eq!(ann["volume.kubernetes.io/selected-node"], node, "{c}");
        assert_eq!(
            ann["volume.kubernetes.io/storage-provisioner"], "korral.dev/local-path",
            "{c}"
        );
        let volume = c["spec"]["volumeName"].as_str().unwrap_or("").to_string();
        assert_eq!(
            volume,
            format!("pvc-{}", c["metadata"]["uid"].as_str().unwrap_or(""))
        );
        let v = get(&s, "pv", &volume);
        assert_eq!(
            v["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
            "korral.dev/local-path"
        );
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(
            v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
                [0],
            node,
            "{v}"
        );
        assert!(
            v["spec"]["hostPath"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("/storage/{volume}"))),
            "{v}"
        );
        assert!(
            events_of(&s, &claim).contains(&format!(
                "ProvisioningSucceeded: Successfully provisioned volume {volume}"
            )),
            "{}",
            events_of(&s, &claim)
        );
    }

    // an unbound Immediate claim keeps its pod Pending, with kube's message
    s.apply("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: manual}\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: Immediate\n");
    s.apply(&pvc("pinned", "1Gi", "  storageClassName: manual\n"));
    s.apply(&pod_using("waits", "pinned"));
    wait_for("waits to be unschedulable", LONG, || {
        jsonpath(
            &s,
            "pod",
            "waits",
            "{.status.conditions[?(@.type==\"PodScheduled\")].message}",
        )
        .contains("pod has unbound immediate PersistentVolumeClaims")
    });
    assert!(
        events_of(&s, "waits").contains(
            "FailedScheduling: 0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        ),
        "{}",
        events_of(&s, "waits")
    );
    // a volume on sim-2 appears: the claim binds, and the pod follows its volume there
    s.apply(&pv(
        "on-sim-2",
        "1Gi",
        "manual",
        "Retain",
        "  nodeAffinity: {required: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [sim-2]}]}]}}\n",
    ));
    wait_phase(&s, "pvc", "pinned", "Bound");
    wait_phase(&s, "pod", "waits", "Running");
    assert_eq!(get(&s, "pod", "waits")["spec"]["nodeName"], "sim-2");
    // a second pod using the same volume goes there too
    s.apply(&pod_using("follows", "pinned"));
    wait_phase(&s, "pod", "follows", "Running");
    assert_eq!(get(&s, "pod", "follows")["spec"]["nodeName"], "sim-2");
}

// ---- a real node: data outlives pods; Delete removes it ----

const NODE: &str = "store-1";

fn claim_pod(name: &str, image: &str, script: &str) -> String {
    pod_with_data(
        name,
        image,
        script,
        "persistentVolumeClaim: {claimName: data}",
    )
}

/// A pod running `script` once, with volume `data` (of source `source`, flow
/// YAML) at /data.
fn pod_with_data(name: &str, image: &str, script: &str, source: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", "{script}"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, {source}}}]
"#
    )
}

/// The flags every node daemon here takes, then `extra`.
/// A pod writes into a new default-class claim, a later pod reads it back on
/// the same node, and deleting the claim removes volume and directory.
fn data_outlives_pods_until_the_claim_goes(s: &Server, node: &NodeProc, name: &str, image: &str) {
    s.apply(&pvc("data", "64Mi", ""));
    wait_phase(s, "pvc", "data", "Pending");

    s.apply(&claim_pod(
        "writer",
        image,
        "echo hello from the writer > /data/greeting",
    ));
    assert_eq!(finished_log(s, "writer"), "");
    let claim = get(s, "pvc", "data");
    assert_eq!(claim["spec"]["storageClassName"], "local-path", "{claim}");
    assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
    assert_eq!(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        name
    );
    let volume = claim["spec"]["volumeName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let dir = node.data_dir.join("storage").join(&volume);
    let pv = get(s, "pv", &volume);
    assert_eq!(
        pv["spec"]["hostPath"]["path"],
        dir.to_string_lossy().as_ref(),
        "{pv}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("greeting")).expect("the file on the node"),
        "hello from the writer\n"
    );

    // the writer is gone; a new pod sees what it wrote
    s.ok(&["delete", "pod", "writer"]);
    s.apply(&claim_pod("reader", image, "cat /data/greeting"));
    assert_eq!(finished_log(s, "reader").trim(), "hello from the writer");
    assert_eq!(get(s, "pod", "reader")["spec"]["nodeName"], name);
    s.ok(&["delete", "pod", "reader"]);

    // reclaim Delete: the volume is Released, the node removes its directory, then the volume
    s.ok(&["delete", "pvc", "data"]);
    wait_for("the volume to be deleted", LONG, || {
        let o = s.kubectl(&["get", "pv", &volume]);
        !o.status.success() && support::stderr(&o).contains("NotFound")
    });
    assert!(!dir.exists(), "{} is removed", dir.display());
    let log = std::fs::read_to_string(&node.log).unwrap_or_default();
    assert!(
        log.contains("reclaimed: directory removed, volume deleted"),
        "{log}"
    );
}

/// A Ready `korral node` named [`NODE`] on the process runtime.
fn process_node(s: &Server) -> NodeProc {
    let data = s.dir.path().join("node-data");
    std::fs::create_dir_all(&data).expect("data dir");
    let data = data.canonicalize().expect("canonical");
    let args = node_args(
        s,
        NODE,
        &data,
        &["--runtime", "process", "--process-pod-ips", "loopback"],
    );
    let node = NodeProc::start(&data, &s.dir.path().join("node.log"), &args);
    wait_node(s, &node, NODE);
    node
}

#[test]
fn a_local_path_claim_keeps_its_data_across_pods_until_deleted() {
    let s = Server::start();
    let node = process_node(&s);
    data_outlives_pods_until_the_claim_goes(&s, &node, NODE, "busybox");
}

#[test]
fn a_containerd_node_bind_mounts_local_path_claims() {
    let s = Server::start();
    let name = format!("ctd-store-{}", std::process::id());
    let dir = s.dir.path().join("ctd");
    std::fs::create_dir_all(&dir).expect("dir");
    let ctd = Containerd::start(&dir, &name);
    ctd.import_busybox("busybox:1.36");
    let data = dir.join("node-data");
    let args = containerd_node_args(&s, &name, &data, &ctd, &[]);
    let node = NodeProc::start(&data, &s.dir.path().join("node.log"), &args);
    wait_node(&s, &node, &name);
    data_outlives_pods_until_the_claim_goes(&s, &node, &name, "busybox:1.36");
}

// ---- generic ephemeral volumes, the retroactive default class, expansion ----

/// A pod whose volume `data` is a generic ephemeral volume (64Mi, no class).
fn ephemeral_pod(name: &str, image: &str, script: &str) -> String {
    let template = format!(
        "ephemeral: {{volumeClaimTemplate: {{metadata: {{labels: {{made-for: {name}}}, annotations: {{note: scratch}}}}, spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 64Mi}}}}}}}}}}"
    );
    pod_with_data(name, image, script, &template)
}

/// The PodScheduled condition's message.
fn unschedulable_message(s: &Server, pod: &str) -> String {
    jsonpath(
        s,
        "pod",
        pod,
        "{.status.conditions[?(@.type==\"PodScheduled\")].message}",
    )
}

#[test]
fn an_ephemeral_volume_gets_a_claim_owned_by_its_pod_and_goes_with_it() {
    let s = Server::start();
    let node = process_node(&s);

    // the controller makes `<pod>-<volume>` from the template, owned by the pod;
    // the scheduler places it (WaitForFirstConsumer) and the node mounts it
    s.apply(&ephemeral_pod(
        "scratch",
        "busybox",
        "echo written through an ephemeral volume > /data/note",
    ));
    assert_eq!(finished_log(&s, "scratch"), "");
    let pod = get(&s, "pod", "scratch");
    let claim = get(&s, "pvc", "scratch-data");
    assert_eq!(
        claim["metadata"]["ownerReferences"],
        serde_json::json!([{"apiVersion": "v1", "kind": "Pod", "name": "scratch",
            "uid": pod["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]),
        "{claim}"
    );
    assert_eq!(
        claim["metadata"]["labels"]["made-for"], "scratch",
        "{claim}"
    );
    assert_eq!(
        claim["metadata"]["annotations"]["note"], "scratch",
        "{claim}"
    );
    assert_eq!(claim["spec"]["storageClassName"], "local-path", "{claim}");
    assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
    assert_eq!(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        NODE
    );
    let volume = claim["spec"]["volumeName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let dir = node.data_dir.join("storage").join(&volume);
    assert_eq!(
        std::fs::read_to_string(dir.join("note")).expect("the file on the node"),
        "written through an ephemeral volume\n"
    );

    // a claim of that name the pod does not own is never used: kube's event
    // and scheduling message, until it goes and the pod's own claim replaces it
    s.apply(&pvc("clash-data", "64Mi", ""));
    s.apply(&ephemeral_pod(
        "clash",
        "busybox",
        "cat /data/missing 2>/dev/null; echo clean",
    ));
    let refusal = "PVC default/clash-data was not created for pod default/clash (pod is not owner)";
    wait_for("clash to be unschedulable", LONG, || {
        unschedulable_message(&s, "clash").contains(refusal)
    });
    wait_for("the FailedBinding event on clash", LONG, || {
        events_of(&s, "clash").contains(&format!("FailedBinding: ephemeral volume data: {refusal}"))
    });
    assert!(
        get(&s, "pvc", "clash-data")["metadata"]["ownerReferences"].is_null(),
        "a claim not made for the pod is left as it is"
    );
    assert_eq!(jsonpath(&s, "pod", "clash", "{.spec.nodeName}"), "");
    // without waiting: kubectl's wait for a deletion can miss it when a
    // controller recreates the name at once (here the pod's own claim)
    s.ok(&["delete", "pvc", "clash-data", "--wait=false"]);
    assert_eq!(finished_log(&s, "clash").trim(), "clean");
    let owner = get(&s, "pvc", "clash-data")["metadata"]["ownerReferences"][0].clone();
    assert_eq!(
        owner["uid"],
        get(&s, "pod", "clash")["metadata"]["uid"],
        "{owner}"
    );

    // the claim is garbage-collected with its pod; reclaim Delete removes volume and directory
    s.ok(&["delete", "pod", "scratch"]);
    wait_for("scratch-data to be garbage-collected", LONG, || {
        get(&s, "pvc", "scratch-data").is_null()
    });
    wait_for("the volume to be deleted", LONG, || {
        get(&s, "pv", &volume).is_null()
    });
    assert!(!dir.exists(), "{} is removed", dir.display());
}

const FAST: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: korral.dev/local-path\nvolumeBindingMode: WaitForFirstConsumer\n";
const FIXED: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fixed}\nprovisioner: korral.dev/local-path\nvolumeBindingMode: WaitForFirstConsumer\nallowVolumeExpansion: false\n";
const DEFAULT_ANN: &str = "storageclass.kubernetes.io/is-default-class";

#[test]
fn a_classless_claim_gets_the_default_class_once_there_is_one() {
    let s = Server::start();
    wait_for("the local-path class", LONG, || {
        !get(&s, "storageclass", "local-path").is_null()
    });
    s.ok(&[
        "annotate",
        "storageclass",
        "local-path",
        &format!("{DEFAULT_ANN}=false"),
        "--overwrite",
    ]);
    s.apply(FAST);
    s.apply(&pvc("late", "64Mi", ""));
    s.apply(&pvc(
        "explicitly-none",
        "64Mi",
        "  storageClassName: \"\"\n",
    ));
    assert!(
        get(&s, "pvc", "late")["spec"]["storageClassName"].is_null(),
        "no default class: the claim names none"
    );
    wait_phase(&s, "pvc", "late", "Pending");
    wait_for("FailedBinding on the classless claim", LONG, || {
        events_of(&s, "late").contains(
            "FailedBinding: no persistent volumes available for this claim and no storage class is set",
        )
    });
    assert!(get(&s, "pvc", "late")["spec"]["storageClassName"].is_null());

    s.ok(&[
        "annotate",
        "storageclass",
        "fast",
        &format!("{DEFAULT_ANN}=true"),
    ]);
    wait_for("late to get the default class", LONG, || {
        get(&s, "pvc", "late")["spec"]["storageClassName"] == "fast"
    });
    wait_for("WaitForFirstConsumer on late", LONG, || {
        events_of(&s, "late").contains("WaitForFirstConsumer")
    });
    assert_eq!(
        get(&s, "pvc", "explicitly-none")["spec"]["storageClassName"],
        "",
        "an explicit empty class is a choice, kept"
    );
}

#[test]
fn bound_claims_grow_only_where_their_class_allows_it() {
    let s = Server::start();
    let _nodes = SimulatedNodes::start(&s, "sim", 1);
    s.apply(FIXED);
    s.apply(&pvc("grows", "64Mi", ""));
    s.apply(&pvc("stuck", "64Mi", "  storageClassName: fixed\n"));
    s.apply(&pod_using("uses-grows", "grows"));
    s.apply(&pod_using("uses-stuck", "stuck"));
    for claim in ["grows", "stuck"] {
        wait_phase(&s, "pvc", claim, "Bound");
    }
    let resize = |claim: &str, size: &str| {
        s.kubectl(&[
            "patch",
            "pvc",
            claim,
            "-p",
            &format!("{{\"spec\":{{\"resources\":{{\"requests\":{{\"storage\":\"{size}\"}}}}}}}}"),
        ])
    };

    // a class without allowVolumeExpansion: refused by admission, as kube's
    let o = resize("stuck", "128Mi");
    assert!(!o.status.success());
    assert_eq!(
        support::stderr(&o).trim(),
        "Error from server (Forbidden): persistentvolumeclaims \"stuck\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
    );
    assert_eq!(
        get(&s, "pvc", "stuck")["spec"]["resources"]["requests"]["storage"],
        "64Mi"
    );

    // local-path allows it: the volume's capacity grows, the claim ends as a finished resize
    assert_eq!(
        get(&s, "storageclass", "local-path")["allowVolumeExpansion"],
        true
    );
    let o = resize("grows", "128Mi");
    assert!(o.status.success(), "{}", support::stderr(&o));
    wait_for("grows to have 128Mi", LONG, || {
        get(&s, "pvc", "grows")["status"]["capacity"]["storage"] == "128Mi"
    });
    let c = get(&s, "pvc", "grows");
    let volume = c["spec"]["volumeName"].as_str().unwrap_or("").to_string();
    assert_eq!(
        get(&s, "pv", &volume)["spec"]["capacity"]["storage"],
        "128Mi"
    );
    assert_eq!(c["status"]["allocatedResources"]["storage"], "128Mi", "{c}");
    assert!(c["status"]["allocatedResourceStatuses"].is_null(), "{c}");
    assert!(
        c["status"]["conditions"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{c}"
    );
    wait_for("VolumeResizeSuccessful on grows", LONG, || {
        events_of(&s, "grows").contains("VolumeResizeSuccessful: Resize volume succeeded")
    });
    assert!(
        events_of(&s, "grows").contains(&format!(
            "Resizing: External resizer is resizing volume {volume}"
        )),
        "{}",
        events_of(&s, "grows")
    );

    // shrinking is refused by validation, with kube's message
    let o = resize("grows", "64Mi");
    assert!(!o.status.success());
    assert_eq!(
        support::stderr(&o).trim(),
        "The PersistentVolumeClaim \"grows\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
    );
}
