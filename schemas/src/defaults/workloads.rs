//! Defaults of the workload kinds: apps/v1, batch/v1, autoscaling, policy/v1.

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy,
    ReplicaSet, RollingUpdateDaemonSet, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy,
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler as HpaV1;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::defaults::core::default_claim_template;
use crate::defaults::{ApplyDefaults, default_template, no_defaults, set, set_str};

impl ApplyDefaults for Deployment {
    fn apply_defaults(&mut self) {
        let s = self.spec.get_or_insert_with(Default::default);
        set(&mut s.replicas, 1);
        set(&mut s.revision_history_limit, 10);
        set(&mut s.progress_deadline_seconds, 600);
        let strategy = s.strategy.get_or_insert_with(DeploymentStrategy::default);
        set_str(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            set(&mut ru.max_unavailable, IntOrString::String("25%".into()));
            set(&mut ru.max_surge, IntOrString::String("25%".into()));
        }
        default_template(&mut s.template);
    }
}

impl ApplyDefaults for ReplicaSet {
    fn apply_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set(&mut spec.replicas, 1);
        if let Some(t) = spec.template.as_mut() {
            default_template(t);
        }
    }
}

impl ApplyDefaults for StatefulSet {
    fn apply_defaults(&mut self) {
        let s = self.spec.get_or_insert_with(Default::default);
        set(&mut s.replicas, 1);
        set_str(&mut s.pod_management_policy, "OrderedReady");
        set(&mut s.revision_history_limit, 10);
        let strategy = s
            .update_strategy
            .get_or_insert_with(StatefulSetUpdateStrategy::default);
        if strategy.type_.as_deref().is_none_or(str::is_empty) {
            strategy.type_ = Some("RollingUpdate".into());
            strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        }
        if strategy.type_.as_deref() == Some("RollingUpdate")
            && let Some(ru) = strategy.rolling_update.as_mut()
        {
            set(&mut ru.partition, 0);
        }
        let retention = s
            .persistent_volume_claim_retention_policy
            .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
        set_str(&mut retention.when_deleted, "Retain");
        set_str(&mut retention.when_scaled, "Retain");
        for c in s.volume_claim_templates.iter_mut().flatten() {
            default_claim_template(c);
        }
        default_template(&mut s.template);
    }
}

impl ApplyDefaults for DaemonSet {
    fn apply_defaults(&mut self) {
        let s = self.spec.get_or_insert_with(Default::default);
        set(&mut s.revision_history_limit, 10);
        let strategy = s
            .update_strategy
            .get_or_insert_with(DaemonSetUpdateStrategy::default);
        set_str(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDaemonSet::default);
            set(&mut ru.max_unavailable, IntOrString::Int(1));
            set(&mut ru.max_surge, IntOrString::Int(0));
        }
        default_template(&mut s.template);
    }
}

impl ApplyDefaults for Job {
    fn apply_defaults(&mut self) {
        let s = self.spec.get_or_insert_with(Default::default);
        // SetDefaults_Job: a Job without labels takes its template's
        if self.metadata.labels.as_ref().is_none_or(|l| l.is_empty())
            && let Some(labels) = s
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .filter(|l| !l.is_empty())
        {
            self.metadata.labels = Some(labels);
        }
        if s.completions.is_none() && s.parallelism.is_none() {
            s.completions = Some(1);
            s.parallelism = Some(1);
        }
        set(&mut s.parallelism, 1);
        if s.backoff_limit.is_none() {
            s.backoff_limit = Some(if s.backoff_limit_per_index.is_some() {
                i32::MAX
            } else {
                6
            });
        }
        set_str(&mut s.completion_mode, "NonIndexed");
        set(&mut s.suspend, false);
        set(&mut s.manual_selector, false);
        if s.pod_replacement_policy.is_none() {
            s.pod_replacement_policy = Some(if s.pod_failure_policy.is_some() {
                "Failed".into()
            } else {
                "TerminatingOrFailed".into()
            });
        }
        for rule in s
            .pod_failure_policy
            .iter_mut()
            .flat_map(|p| p.rules.iter_mut())
        {
            for pattern in rule.on_pod_conditions.iter_mut().flatten() {
                if pattern.status.is_empty() {
                    pattern.status = "True".into();
                }
            }
        }
        default_template(&mut s.template);
    }
}

impl ApplyDefaults for CronJob {
    fn apply_defaults(&mut self) {
        let s = self.spec.get_or_insert_with(Default::default);
        set_str(&mut s.concurrency_policy, "Allow");
        set(&mut s.suspend, false);
        set(&mut s.successful_jobs_history_limit, 3);
        set(&mut s.failed_jobs_history_limit, 1);
        if let Some(t) = s.job_template.spec.as_mut().map(|j| &mut j.template) {
            default_template(t);
        }
    }
}

/// The scale-up rules Kubernetes fills in when a behavior leaves them out.
fn default_scale_up(r: &mut HPAScalingRules) {
    set(&mut r.stabilization_window_seconds, 0);
    set_str(&mut r.select_policy, "Max");
    set(
        &mut r.policies,
        vec![
            HPAScalingPolicy {
                type_: "Pods".into(),
                value: 4,
                period_seconds: 15,
            },
            HPAScalingPolicy {
                type_: "Percent".into(),
                value: 100,
                period_seconds: 15,
            },
        ],
    );
}

fn default_scale_down(r: &mut HPAScalingRules) {
    set_str(&mut r.select_policy, "Max");
    set(
        &mut r.policies,
        vec![HPAScalingPolicy {
            type_: "Percent".into(),
            value: 100,
            period_seconds: 15,
        }],
    );
}

impl ApplyDefaults for HorizontalPodAutoscaler {
    fn apply_defaults(&mut self) {
        let s = self.spec.get_or_insert_with(Default::default);
        set(&mut s.min_replicas, 1);
        if s.metrics.as_ref().is_none_or(Vec::is_empty) {
            s.metrics = Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(80),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]);
        }
        if let Some(b) = s.behavior.as_mut() {
            default_scale_up(b.scale_up.get_or_insert_with(Default::default));
            default_scale_down(b.scale_down.get_or_insert_with(Default::default));
        }
        let _: &CrossVersionObjectReference = &s.scale_target_ref;
    }
}

impl ApplyDefaults for HpaV1 {
    fn apply_defaults(&mut self) {
        let s = self.spec.get_or_insert_with(Default::default);
        set(&mut s.min_replicas, 1);
    }
}

no_defaults!(ControllerRevision, PodDisruptionBudget);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::decode_typed;
    use serde_json::json;

    #[test]
    fn deployment_defaults_match_kubernetes() {
        let mut d: Deployment = decode_typed(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                           "ports": [{"containerPort": 80}]}]}}}
        }))
        .expect("decode");
        d.apply_defaults();
        let v = serde_json::to_value(&d).expect("json");
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(v["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(v["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(v["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            v["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn statefulset_job_and_cronjob_defaults() {
        let pod = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "restartPolicy": "Never"}});
        let mut sts: StatefulSet = decode_typed(&json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "x"}}, "template": pod,
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}))
        .expect("sts");
        sts.apply_defaults();
        let v = serde_json::to_value(&sts).expect("json");
        assert_eq!(v["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            v["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            v["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            v["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            v["spec"]["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );

        let mut job: Job = decode_typed(&json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": pod}}))
            .expect("job");
        job.apply_defaults();
        let v = serde_json::to_value(&job).expect("json");
        for (f, want) in [
            ("completions", json!(1)),
            ("parallelism", json!(1)),
            ("backoffLimit", json!(6)),
            ("completionMode", json!("NonIndexed")),
            ("suspend", json!(false)),
            ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ] {
            assert_eq!(v["spec"][f], want, "{f}");
        }

        let mut cj: CronJob = decode_typed(
            &json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": pod}}}}),
        )
        .expect("cronjob");
        cj.apply_defaults();
        let v = serde_json::to_value(&cj).expect("json");
        assert_eq!(v["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(v["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(v["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(
            v["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
    }

    #[test]
    fn hpa_defaults_to_80_percent_cpu() {
        let mut h: HorizontalPodAutoscaler = decode_typed(&json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}}))
        .expect("hpa");
        h.apply_defaults();
        let v = serde_json::to_value(&h).expect("json");
        assert_eq!(v["spec"]["minReplicas"], 1);
        assert_eq!(
            v["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
    }
}
