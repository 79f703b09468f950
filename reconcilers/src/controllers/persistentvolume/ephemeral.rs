//! kube's `ephemeral-volume` controller: for each generic ephemeral volume
//! of a pod (`volumes[].ephemeral.volumeClaimTemplate`) it creates the claim
//! `<pod>-<volume>` from the template (labels, annotations, spec), owned by
//! the pod (controller, blockOwnerDeletion) so the garbage collector deletes
//! it with the pod. A claim of that name the pod does not control is never
//! used: the pod gets a `FailedBinding` event and the scheduler keeps it
//! Pending with the same message until the claim goes (a deleted claim is
//! re-created while its pod lives).

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Volume};
use schemas::MetaExt;

use crate::controllers::Context;
use crate::controllers::podutil::{controller_of, controller_ref};
use crate::controllers::recorder::{Recorder, WARNING};
use crate::runtime::{Action, Cache, ClientError, Controller, ObjectRef, WriteParams};

const NAME: &str = "ephemeral-volume";

/// The claim kube names for ephemeral volume `v` of `pod` (`VolumeClaimName`).
pub fn claim_name(pod: &Pod, v: &Volume) -> String {
    format!("{}-{}", pod.metadata.name_str(), v.name)
}

/// kube's `VolumeIsForPod`: the claim must be in the pod's namespace and
/// controlled by the pod, else it was made for something else.
pub fn volume_is_for_pod(pod: &Pod, claim: &PersistentVolumeClaim) -> Result<(), String> {
    let controlled =
        controller_of(&claim.metadata).is_some_and(|o| o.uid == pod.metadata.uid_str());
    if claim.metadata.namespace_str() != pod.metadata.namespace_str() || !controlled {
        return Err(format!(
            "PVC {}/{} was not created for pod {}/{} (pod is not owner)",
            claim.metadata.namespace_str(),
            claim.metadata.name_str(),
            pod.metadata.namespace_str(),
            pod.metadata.name_str()
        ));
    }
    Ok(())
}

/// The pod's generic ephemeral volumes.
fn ephemeral_volumes(pod: &Pod) -> impl Iterator<Item = &Volume> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| v.ephemeral.is_some())
}

/// The claim to create for ephemeral volume `v` of `pod`: the template's
/// labels, annotations and spec, owned by the pod (None for a volume
/// without a template, which validation refuses).
pub fn claim_for(pod: &Pod, v: &Volume) -> Option<PersistentVolumeClaim> {
    let template = v.ephemeral.as_ref()?.volume_claim_template.as_ref()?;
    let meta = template.metadata.clone().unwrap_or_default();
    let mut claim = PersistentVolumeClaim {
        spec: Some(template.spec.clone()),
        ..Default::default()
    };
    claim.metadata.name = Some(claim_name(pod, v));
    claim.metadata.namespace = pod.metadata.namespace.clone();
    claim.metadata.labels = meta.labels;
    claim.metadata.annotations = meta.annotations;
    claim.metadata.owner_references = Some(vec![controller_ref(pod)]);
    Some(claim)
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let pods = ctx.informers.pods();
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let pod_cache = pods.cache();
    let controller = Controller::new(NAME, &pods)
        // a claim that goes (or changes owner) wakes the pods that want its name
        .watches(&claims, move |c: &PersistentVolumeClaim| {
            pod_cache
                .in_namespace(c.metadata.namespace_str())
                .iter()
                .filter(|p| ephemeral_volumes(p).any(|v| claim_name(p, v) == c.metadata.name_str()))
                .map(|p| ObjectRef::of(p.as_ref()))
                .collect()
        })
        .workers(3);
    let recorder = Recorder::new(ctx.client.clone(), "ephemeral_volume", NAME);
    let (pods, claims) = (pods.cache(), claims.cache());
    pods.wait_synced().await;
    claims.wait_synced().await;
    let state = ctx.clone();
    controller
        .run(
            move |key| {
                reconcile(
                    state.clone(),
                    pods.clone(),
                    claims.clone(),
                    recorder.clone(),
                    key,
                )
            },
            ctx.metrics.clone(),
            ctx.stopped(),
        )
        .await;
}

/// kube's `syncHandler`: every ephemeral volume of a live pod has its claim.
async fn reconcile(
    ctx: Context,
    pods: Cache<Pod>,
    claims: Cache<PersistentVolumeClaim>,
    recorder: Recorder,
    key: ObjectRef,
) -> Result<Action, ClientError> {
    let Some(pod) = pods.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let ns = pod.metadata.namespace_str();
    let api = ctx.client.api::<PersistentVolumeClaim>(Some(ns));
    for v in ephemeral_volumes(&pod) {
        let name = claim_name(&pod, v);
        if let Some(existing) = claims.get(&ObjectRef::new(Some(ns), &name)) {
            if let Err(message) = volume_is_for_pod(&pod, &existing) {
                tracing::info!(pod = %key, claim = %name, "an existing claim is not the pod's");
                recorder.record(
                    pod.as_ref(),
                    WARNING,
                    "FailedBinding",
                    "",
                    &format!("ephemeral volume {}: {message}", v.name),
                );
                // the claim's deletion or adoption wakes the pod again
                return Ok(Action::AwaitChange);
            }
            continue;
        }
        let Some(claim) = claim_for(&pod, v) else {
            continue;
        };
        let wp = WriteParams {
            field_manager: Some("ephemeral-volume-controller".into()),
            ..Default::default()
        };
        match api.create(&claim, &wp).await {
            Ok(_) => {
                tracing::info!(pod = %key, claim = %name, "created the claim of an ephemeral volume")
            }
            // the cache lags: the next claim event decides whose it is
            Err(e) if e.is_already_exists() => {}
            Err(e) => {
                recorder.record(
                    pod.as_ref(),
                    WARNING,
                    "FailedBinding",
                    "",
                    &format!("ephemeral volume {}: create PVC {name}: {e}", v.name),
                );
                return Err(e);
            }
        }
    }
    Ok(Action::AwaitChange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "pod-uid"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": [
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {"note": "fast"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                        "resources": {"requests": {"storage": "1Gi"}}}}}},
                {"name": "cfg", "emptyDir": {}},
            ]},
        }))
        .expect("pod")
    }

    #[test]
    fn the_claim_copies_the_template_and_is_owned_by_the_pod() {
        let p = pod();
        let vols: Vec<&Volume> = ephemeral_volumes(&p).collect();
        assert_eq!(vols.len(), 1);
        let c = claim_for(&p, vols[0]).expect("a claim");
        let v = serde_json::to_value(&c).expect("json");
        assert_eq!(v["metadata"]["name"], "web-scratch");
        assert_eq!(v["metadata"]["namespace"], "default");
        assert_eq!(v["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(v["metadata"]["annotations"], json!({"note": "fast"}));
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "pod-uid",
                "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(v["spec"]["storageClassName"], "local-path");
        assert_eq!(v["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert!(volume_is_for_pod(&p, &c).is_ok());
    }

    #[test]
    fn a_claim_the_pod_does_not_control_is_refused() {
        let p = pod();
        let foreign: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "web-scratch", "namespace": "default",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "web",
                    "uid": "an-older-pod", "controller": true}]},
        }))
        .expect("claim");
        assert_eq!(
            volume_is_for_pod(&p, &foreign),
            Err(
                "PVC default/web-scratch was not created for pod default/web (pod is not owner)"
                    .into()
            )
        );
        let mut unowned = foreign.clone();
        unowned.metadata.owner_references = None;
        assert!(volume_is_for_pod(&p, &unowned).is_err());
        // owned, but not as controller
        let mut weak = foreign;
        if let Some(o) = weak.metadata.owner_references.as_mut() {
            o[0].uid = "pod-uid".into();
            o[0].controller = None;
        }
        assert!(volume_is_for_pod(&p, &weak).is_err());
    }
}
