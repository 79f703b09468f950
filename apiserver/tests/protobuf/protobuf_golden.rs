//! Real kubectl protobuf bodies decode to the JSON kubectl sends for the same
//! command, and pass korral's validation.

use std::fs;

use apiserver::protobuf::decode_request;
use serde_json::Value;

use crate::{assert_valid, fixtures};

/// Drops `null` members: Go writes unset `Time`s as null, the decoder leaves them out.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Replaces the times kubectl stamps with its clock (`kubectl certificate
/// approve`'s condition), which differ between the two captures, after
/// checking they are times.
fn mask_clock(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if k == "lastUpdateTime" {
                    let t = v.as_str().unwrap_or_default();
                    assert!(
                        chrono::DateTime::parse_from_rfc3339(t).is_ok(),
                        "{k}: {t:?}"
                    );
                    *v = Value::from("<kubectl's clock>");
                } else {
                    mask_clock(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_clock),
        _ => {}
    }
}

#[test]
fn kubectl_protobuf_bodies_decode_to_kubectls_json() {
    let dir = fixtures().join("kubectl");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".pb").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 32, "fixtures: {names:?}");
    for name in names {
        let body = fs::read(dir.join(format!("{name}.pb"))).expect("body");
        let decoded = decode_request(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = fs::read(dir.join(format!("{name}.kubectl-1.31.json"))).expect("json twin");
        let mut expected: Value = serde_json::from_slice(&json).expect("kubectl's JSON");
        strip_nulls(&mut expected);
        mask_clock(&mut expected);
        let mut masked = decoded.clone();
        mask_clock(&mut masked);
        assert_eq!(
            masked, expected,
            "{name}: decoded\n{masked:#}\nexpected\n{expected:#}"
        );
        if schemas::lookup(
            decoded["apiVersion"].as_str().unwrap_or(""),
            decoded["kind"].as_str().unwrap_or(""),
        )
        .is_ok()
        {
            assert_valid(&decoded);
        }
    }
}

#[test]
fn kubectl_protobuf_zero_replicas_and_binary_data_survive() {
    let body = fs::read(fixtures().join("kubectl/deployment0.pb")).expect("body");
    let d = decode_request(&body).expect("decodes");
    assert_eq!(d["spec"]["replicas"], 0, "a *int32 zero is set, not unset");
    let body = fs::read(fixtures().join("kubectl/configmapfiles.pb")).expect("body");
    let cm = decode_request(&body).expect("decodes");
    let blob = cm["binaryData"]["blob"].as_str().expect("binaryData.blob");
    assert_eq!(blob.len(), 24, "16 random bytes in padded base64: {blob}");
    assert_eq!(cm["data"]["text.txt"], "hello\n");
}

fn captured(name: &str) -> Value {
    let body = fs::read(fixtures().join(format!("kubectl/{name}.pb"))).expect("body");
    decode_request(&body).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn kubectl_protobuf_bodies_of_the_other_groups_keep_what_kubectl_set() {
    let job = captured("job");
    assert_eq!(
        (job["apiVersion"].as_str(), job["kind"].as_str()),
        (Some("batch/v1"), Some("Job"))
    );
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], "busybox:1.36");
    assert_eq!(pod["restartPolicy"], "Never");
    let command = &captured("jobcommand")["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(command, &serde_json::json!(["sh", "-c", "echo hi"]));

    let cj = captured("cronjob");
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *");
    assert_eq!(cj["spec"]["jobTemplate"]["metadata"]["name"], "cj1");

    let role = captured("role");
    assert_eq!(role["apiVersion"], "rbac.authorization.k8s.io/v1");
    assert_eq!(
        role["rules"][1],
        serde_json::json!({"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]})
    );
    let binding = captured("rolebinding");
    // a ServiceAccount subject has no apiGroup; users and groups have rbac's
    assert!(binding["subjects"][2].get("apiGroup").is_none());
    assert_eq!(
        binding["subjects"][0]["apiGroup"],
        "rbac.authorization.k8s.io"
    );
    assert_eq!(
        captured("clusterroleurls")["rules"][0]["nonResourceURLs"][0],
        "/healthz"
    );

    let hpa = captured("hpacpu");
    assert_eq!(hpa["apiVersion"], "autoscaling/v1");
    assert_eq!(hpa["spec"]["targetCPUUtilizationPercentage"], 80);
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    // HPA status counts are Go value fields without omitempty: zero is kept
    assert_eq!(
        hpa["status"],
        serde_json::json!({"currentReplicas": 0, "desiredReplicas": 0})
    );

    assert_eq!(captured("pdbpercent")["spec"]["maxUnavailable"], "25%");
    assert_eq!(captured("pdb")["spec"]["minAvailable"], 1);
    let pc = captured("priorityclass");
    assert_eq!(
        (pc["value"].as_i64(), pc["preemptionPolicy"].as_str()),
        (Some(1000), Some("Never"))
    );
    assert_eq!(captured("quota")["spec"]["hard"]["limits.memory"], "4Gi");
    let ing = captured("ingresstls");
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"],
        "http"
    );
    assert_eq!(
        ing["spec"]["defaultBackend"]["service"]["port"]["number"],
        80
    );
    assert_eq!(captured("serviceaccount")["metadata"]["name"], "sa1");

    // kubectl certificate approve: the whole request, with the new condition
    let csr = captured("csrapprove");
    assert_eq!(
        csr["spec"]["extra"]["scopes"],
        serde_json::json!(["a", "b"])
    );
    let condition = &csr["status"]["conditions"][0];
    assert_eq!(
        (condition["type"].as_str(), condition["status"].as_str()),
        (Some("Approved"), Some("True"))
    );
    assert!(
        condition.get("lastTransitionTime").is_none(),
        "an unset Time is left out"
    );
    // kubectl drain --disable-eviction: DeleteOptions in core v1
    assert_eq!(
        captured("drain2"),
        serde_json::json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 7})
    );
}
