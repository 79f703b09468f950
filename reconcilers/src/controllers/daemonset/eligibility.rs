//! Which nodes a DaemonSet's pod belongs on (`NodeShouldRunDaemonPod`): the
//! template's nodeName, nodeSelector and required node affinity, and the
//! node's taints against the template's tolerations plus the ones every
//! DaemonSet pod gets; and the pod the controller creates for a node (those
//! tolerations, the revision labels, and a required node affinity on
//! `metadata.name` that the scheduler binds by).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemas::MetaExt;
use schemas::object::tolerates;

use crate::controllers::podutil::controller_ref;
use crate::controllers::scheduler::plugins::node_affinity::required_matches_node;

/// The label naming the ControllerRevision a pod was made from.
pub const REVISION_HASH: &str = "controller-revision-hash";
/// The label naming the template generation a pod was made from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The DaemonSet annotation the API server bumps on each template change.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// Whether a daemon pod should be created on a node, and whether one already
/// there may keep running (a NoSchedule taint stops new pods, not old ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// A pod should run here.
    pub should_run: bool,
    /// A pod already here may stay.
    pub should_continue_running: bool,
}

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// The tolerations Kubernetes adds to every DaemonSet pod
/// (`AddOrUpdateDaemonPodTolerations`): not-ready and unreachable NoExecute
/// (forever), the pressure conditions and unschedulable NoSchedule, and
/// network-unavailable for host-network pods.
pub fn daemon_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    let mut out = vec![
        exists("node.kubernetes.io/not-ready", "NoExecute"),
        exists("node.kubernetes.io/unreachable", "NoExecute"),
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
        exists("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        out.push(exists(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    out
}

/// `spec` with the daemon tolerations added where no toleration with the
/// same key, operator, value and effect exists (`AddOrUpdateTolerationInPodSpec`).
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    for t in daemon_tolerations(spec) {
        let same = |c: &Toleration| {
            c.key == t.key
                && c.operator.as_deref().unwrap_or("Equal") == t.operator.as_deref().unwrap_or("")
                && c.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("")
                && c.effect == t.effect
        };
        match tolerations.iter_mut().find(|c| same(c)) {
            Some(c) => *c = t,
            None => tolerations.push(t),
        }
    }
    spec.tolerations = Some(tolerations);
}

/// Where `ds`'s pod belongs with respect to `node`.
pub fn placement(node: &Node, ds: &DaemonSet) -> Placement {
    let none = Placement {
        should_run: false,
        should_continue_running: false,
    };
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    let name = node.metadata.name_str();
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return none;
    }
    if !required_matches_node(&spec, name, node.metadata.labels_map()) {
        return none;
    }
    add_daemon_tolerations(&mut spec);
    let tolerations = spec.tolerations.unwrap_or_default();
    let untolerated = |effect: &str| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| t.effect == effect)
            .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
    };
    let no_execute = untolerated("NoExecute");
    if no_execute || untolerated("NoSchedule") {
        return Placement {
            should_run: false,
            should_continue_running: !no_execute,
        };
    }
    Placement {
        should_run: true,
        should_continue_running: true,
    }
}

/// The node a daemon pod is meant for: its `nodeName` once bound, else the
/// `metadata.name` its required node affinity names (`GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        })
}

/// `affinity` with its required node affinity pinned to `node` by a
/// `metadata.name` field requirement, replacing any field requirements in
/// each term (`ReplaceDaemonSetPodNodeNameNodeAffinity`).
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let field = NodeSelectorRequirement {
        key: "metadata.name".into(),
        operator: "In".into(),
        values: Some(vec![node.to_string()]),
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let required = na
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    if required.node_selector_terms.is_empty() {
        required.node_selector_terms = vec![NodeSelectorTerm {
            match_fields: Some(vec![field]),
            ..Default::default()
        }];
    } else {
        for t in &mut required.node_selector_terms {
            t.match_fields = Some(vec![field.clone()]);
        }
    }
    affinity
}

/// `spec.minReadySeconds`.
pub fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Whether the update strategy is RollingUpdate (the default).
pub fn is_rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// The template generation the API server recorded on `ds`.
pub fn template_generation(ds: &DaemonSet) -> Option<String> {
    ds.metadata
        .annotations_map()
        .get(TEMPLATE_GENERATION)
        .cloned()
}

/// Whether `pod` runs `ds`'s current template (`IsPodUpdated`): its hash
/// label is the current revision's, or its generation label the current one.
pub fn is_updated(pod: &Pod, hash: &str, generation: Option<&str>) -> bool {
    let labels = pod.metadata.labels_map();
    (!hash.is_empty() && labels.get(REVISION_HASH).map(String::as_str) == Some(hash))
        || generation
            .is_some_and(|g| labels.get(TEMPLATE_GENERATION_LABEL).map(String::as_str) == Some(g))
}

/// The pod `ds` creates for `node` from the revision `hash`.
pub fn pod_for(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template: PodTemplateSpec = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels: BTreeMap<String, String> = tmeta.labels.unwrap_or_default();
    if let Some(g) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g);
    }
    if !hash.is_empty() {
        labels.insert(REVISION_HASH.into(), hash.into());
    }
    let mut spec = template.spec.unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.metadata.name_str())),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ds(spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "u1",
                         "annotations": {TEMPLATE_GENERATION: "3"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}}
        }))
        .expect("ds")
    }

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints}
        }))
        .expect("node")
    }

    fn run(should_run: bool, should_continue_running: bool) -> Placement {
        Placement {
            should_run,
            should_continue_running,
        }
    }

    #[test]
    fn node_selector_affinity_and_node_name_decide() {
        let plain = ds(json!({"containers": [{"name": "c", "image": "x"}]}));
        let n = node("n1", json!({"disk": "ssd"}), json!([]));
        assert_eq!(placement(&n, &plain), run(true, true));

        let selected = ds(json!({"nodeSelector": {"disk": "hdd"}, "containers": []}));
        assert_eq!(placement(&n, &selected), run(false, false));

        let affinity = ds(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}}));
        assert_eq!(placement(&n, &affinity), run(true, true));
        let other = node("n2", json!({"disk": "hdd"}), json!([]));
        assert_eq!(placement(&other, &affinity), run(false, false));

        let named = ds(json!({"nodeName": "n2", "containers": []}));
        assert_eq!(placement(&n, &named), run(false, false));
        assert_eq!(placement(&other, &named), run(true, true));
    }

    #[test]
    fn taints_stop_new_pods_and_no_execute_evicts_old_ones() {
        let plain = ds(json!({"containers": []}));
        let no_schedule = node(
            "n",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        assert_eq!(placement(&no_schedule, &plain), run(false, true));
        let no_execute = node(
            "n",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
        );
        assert_eq!(placement(&no_execute, &plain), run(false, false));
        let tolerant = ds(json!({"containers": [], "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "db"}]}));
        assert_eq!(placement(&no_execute, &tolerant), run(true, true));
        // PreferNoSchedule never keeps a daemon pod away
        let prefer = node(
            "n",
            json!({}),
            json!([{"key": "k", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(placement(&prefer, &plain), run(true, true));
    }

    #[test]
    fn daemon_pods_tolerate_node_conditions_and_cordons() {
        let plain = ds(json!({"containers": []}));
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            let n = node("n", json!({}), json!([{"key": key, "effect": effect}]));
            assert_eq!(placement(&n, &plain), run(true, true), "{key}");
        }
        let unavailable = node(
            "n",
            json!({}),
            json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
        );
        assert_eq!(placement(&unavailable, &plain), run(false, true));
        let host = ds(json!({"hostNetwork": true, "containers": []}));
        assert_eq!(placement(&unavailable, &host), run(true, true));
    }

    #[test]
    fn pods_are_pinned_to_their_node_with_revision_labels() {
        let d = ds(json!({"containers": [{"name": "c", "image": "x"}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 5}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}],
                                       "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["x"]}]}]}}}}));
        let pod = pod_for(&d, "n7", "abc");
        assert_eq!(target_node(&pod).as_deref(), Some("n7"));
        let labels = pod.metadata.labels_map();
        assert_eq!(labels.get(REVISION_HASH).map(String::as_str), Some("abc"));
        assert_eq!(
            labels.get(TEMPLATE_GENERATION_LABEL).map(String::as_str),
            Some("3")
        );
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
        let spec = pod.spec.expect("spec");
        let terms = spec
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .expect("required")
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert!(terms[0].match_expressions.is_some(), "expressions kept");
        let tolerations = spec.tolerations.expect("tolerations");
        // the template's not-ready toleration is replaced by the forever one
        let not_ready: Vec<_> = tolerations
            .iter()
            .filter(|t| t.key.as_deref() == Some("node.kubernetes.io/not-ready"))
            .collect();
        assert_eq!(not_ready.len(), 1);
        assert_eq!(not_ready[0].toleration_seconds, None);
        assert_eq!(tolerations.len(), 6);
        assert!(is_updated(&pod_for(&d, "n", "abc"), "abc", None));
        assert!(is_updated(&pod_for(&d, "n", "old"), "abc", Some("3")));
        assert!(!is_updated(&pod_for(&d, "n", "old"), "abc", Some("4")));
    }
}
