//! The HorizontalPodAutoscaler controller (autoscaling/v2), after
//! kube-controller-manager's: every sync period each autoscaler reads its
//! target's `scale` subresource, the pods its selector names and their usage
//! from the resource metrics API, computes a replica count per metric
//! (`Resource` and `ContainerResource`, utilisation or average value; the
//! largest wins), normalises it (stabilisation windows, rate policies or the
//! older rules without `behavior`, min/max) and writes it to the scale, with
//! kube's conditions (AbleToScale, ScalingActive, ScalingLimited), status
//! metrics and events. `Pods`, `Object` and `External` metrics need a custom
//! or external metrics API, which korral does not serve: they are reported
//! as failing, as kube reports an absent adapter.

pub mod rate;
pub mod replicas;
pub mod source;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use schemas::{MetaExt, QuantityExt, TimeExt};

use crate::controllers::recorder::{NORMAL, Recorder, WARNING};
use crate::controllers::{Context, write_status};
use crate::runtime::{Action, Cache, ClientError, Controller, ObjectRef};

use rate::{Bounds, History};
use replicas::{PodSample, Recommendation, Target};

const MANAGER: &str = "horizontal-pod-autoscaler";

struct State {
    ctx: Context,
    hpas: Cache<HorizontalPodAutoscaler>,
    recorder: Recorder,
    /// Recommendations and scale events per autoscaler.
    histories: Mutex<HashMap<ObjectRef, History>>,
    /// When each autoscaler was last evaluated, at which generation.
    evaluated: Mutex<HashMap<ObjectRef, (Instant, Option<i64>)>>,
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Context) {
    let informer = ctx.informers.get::<HorizontalPodAutoscaler>();
    let controller = Controller::new("horizontal-pod-autoscaler", &informer).workers(5);
    let state = Arc::new(State {
        recorder: Recorder::new(ctx.client.clone(), MANAGER, MANAGER),
        hpas: informer.cache(),
        histories: Mutex::default(),
        evaluated: Mutex::default(),
        ctx: ctx.clone(),
    });
    let shutdown = ctx.stopped();
    controller
        .run(
            move |key| reconcile(state.clone(), key),
            ctx.metrics.clone(),
            shutdown,
        )
        .await;
}

async fn reconcile(state: Arc<State>, key: ObjectRef) -> Result<Action, ClientError> {
    let period = state.ctx.options.hpa_sync_period;
    let Some(hpa) = state.hpas.get(&key) else {
        lock(&state.histories).remove(&key);
        lock(&state.evaluated).remove(&key);
        return Ok(Action::AwaitChange);
    };
    if hpa.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    // each autoscaler is evaluated once per sync period (kube's fixed-interval
    // queue), however often it changes — a changed spec is looked at at once
    {
        let mut evaluated = lock(&state.evaluated);
        if let Some((at, generation)) = evaluated.get(&key)
            && *generation == hpa.metadata.generation
            && at.elapsed() < period
        {
            return Ok(Action::Requeue(period - at.elapsed()));
        }
        evaluated.insert(key.clone(), (Instant::now(), hpa.metadata.generation));
    }
    let status = evaluate(&state, &key, &hpa).await;
    let api = state
        .ctx
        .client
        .api::<HorizontalPodAutoscaler>(key.namespace.as_deref());
    write_status(
        &api,
        hpa.metadata.name_str(),
        hpa.status.as_ref(),
        &status,
        MANAGER,
    )
    .await?;
    Ok(Action::Requeue(period))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The autoscaler's status being built.
struct Status {
    old: HorizontalPodAutoscalerStatus,
    conditions: Vec<HorizontalPodAutoscalerCondition>,
}

impl Status {
    fn set(&mut self, ty: &str, value: bool, reason: &str, message: &str) {
        let value = if value { "True" } else { "False" };
        let previous = self.old.conditions.iter().flatten().find(|c| c.type_ == ty);
        let transition = match previous {
            Some(p) if p.status == value => p.last_transition_time.clone(),
            _ => Some(schemas::time::now()),
        };
        self.conditions.retain(|c| c.type_ != ty);
        self.conditions.push(HorizontalPodAutoscalerCondition {
            type_: ty.into(),
            status: value.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: transition,
        });
    }

    fn into_status(
        mut self,
        generation: Option<i64>,
        current: i32,
        desired: i32,
        metrics: Option<Vec<MetricStatus>>,
        rescaled: bool,
    ) -> HorizontalPodAutoscalerStatus {
        const ORDER: [&str; 3] = ["AbleToScale", "ScalingActive", "ScalingLimited"];
        self.conditions
            .sort_by_key(|c| ORDER.iter().position(|o| *o == c.type_));
        HorizontalPodAutoscalerStatus {
            current_replicas: Some(current),
            desired_replicas: desired,
            current_metrics: metrics.filter(|m| !m.is_empty()),
            conditions: Some(self.conditions).filter(|c| !c.is_empty()),
            last_scale_time: if rescaled {
                Some(schemas::time::now())
            } else {
                self.old.last_scale_time.clone()
            },
            observed_generation: generation,
        }
    }
}

/// One autoscaler's evaluation (kube's `reconcileAutoscaler`): scales the
/// target when needed and returns the status to write.
async fn evaluate(
    state: &State,
    key: &ObjectRef,
    hpa: &HorizontalPodAutoscaler,
) -> HorizontalPodAutoscalerStatus {
    let old = hpa.status.clone().unwrap_or_default();
    let generation = hpa.metadata.generation;
    let mut st = Status {
        conditions: old.conditions.clone().unwrap_or_default(),
        old: old.clone(),
    };
    let ns = hpa.metadata.namespace_str();
    let Some(spec) = hpa.spec.as_ref() else {
        return old;
    };
    let previous_current = old.current_replicas.unwrap_or(0);
    let mut target = match source::scale(&state.ctx.client, ns, &spec.scale_target_ref).await {
        Ok(t) => t,
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            st.set("AbleToScale", false, "FailedGetScale", &message);
            state
                .recorder
                .record(hpa, WARNING, "FailedGetScale", "", &e);
            return st.into_status(
                generation,
                previous_current,
                old.desired_replicas,
                old.current_metrics.clone(),
                false,
            );
        }
    };
    st.set(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    let current = target.replicas();
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let behavior = spec.behavior.as_ref();
    let up = behavior.and_then(|b| b.scale_up.as_ref());
    let down = behavior.and_then(|b| b.scale_down.as_ref());
    let mut metric_statuses = None;
    let (desired, reason) = if current == 0 && min != 0 {
        st.set(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        (0, String::new())
    } else if current > max {
        (
            max,
            "Current number of replicas above Spec.MaxReplicas".to_string(),
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_string(),
        )
    } else {
        let computed = replicas_for_metrics(state, hpa, &target, current, &mut st).await;
        metric_statuses = Some(computed.statuses);
        let Some((proposal, metric)) = computed.best else {
            return st.into_status(
                generation,
                current,
                old.desired_replicas,
                metric_statuses,
                false,
            );
        };
        let reason = if proposal > current {
            format!("{metric} above target")
        } else {
            "All metrics below target".to_string()
        };
        let bounds = Bounds {
            current,
            min,
            max,
            up,
            down,
            default_down_window: chrono::Duration::from_std(
                state.ctx.options.hpa_downscale_stabilization,
            )
            .unwrap_or_else(|_| chrono::Duration::seconds(300)),
        };
        let n = lock(&state.histories)
            .entry(key.clone())
            .or_default()
            .normalize(Utc::now(), proposal, &bounds);
        st.set("AbleToScale", true, n.able.0, n.able.1);
        let ((why, message), limited) = n.limited;
        st.set("ScalingLimited", limited, why, message);
        (n.replicas, reason)
    };
    let rescale = desired != current && !(current == 0 && min != 0);
    if !rescale {
        return st.into_status(generation, current, current, metric_statuses, false);
    }
    if let Err(e) = target.set_replicas(desired).await {
        st.set(
            "AbleToScale",
            false,
            "FailedUpdateScale",
            &format!("the HPA controller was unable to update the target scale: {e}"),
        );
        state.recorder.record(
            hpa,
            WARNING,
            "FailedRescale",
            "",
            &format!("New size: {desired}; reason: {reason}; error: {e}"),
        );
        return st.into_status(
            generation,
            current,
            old.desired_replicas,
            metric_statuses,
            false,
        );
    }
    lock(&state.histories)
        .entry(key.clone())
        .or_default()
        .scaled(Utc::now(), current, desired, up, down);
    st.set(
        "AbleToScale",
        true,
        "SucceededRescale",
        &format!("the HPA controller was able to update the target scale to {desired}"),
    );
    state.recorder.record(
        hpa,
        NORMAL,
        "SuccessfulRescale",
        "",
        &format!("New size: {desired}; reason: {reason}"),
    );
    tracing::info!(hpa = %key, from = current, to = desired, reason = %reason, "rescaled");
    st.into_status(generation, current, desired, metric_statuses, true)
}

/// What the metrics ask for.
struct Computed {
    /// The largest proposal and the metric that made it; `None` when the
    /// autoscaler must not act (every metric failed, or some failed and the
    /// others ask for fewer replicas).
    best: Option<(i32, String)>,
    statuses: Vec<MetricStatus>,
}

/// One metric's proposal (kube's `computeReplicasForMetrics`).
async fn replicas_for_metrics(
    state: &State,
    hpa: &HorizontalPodAutoscaler,
    target: &source::Target,
    current: i32,
    st: &mut Status,
) -> Computed {
    let selector = target.selector();
    let mut out = Computed {
        best: None,
        statuses: Vec::new(),
    };
    if selector.is_empty() {
        let message = "the HPA target's scale is missing a selector";
        st.set("ScalingActive", false, "InvalidSelector", message);
        state
            .recorder
            .record(hpa, WARNING, "SelectorRequired", "", "selector is required");
        return out;
    }
    let specs = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.clone())
        .unwrap_or_default();
    let mut best: Option<(i32, String)> = None;
    let mut first_error: Option<(String, String)> = None;
    let mut invalid = 0usize;
    for spec in &specs {
        match one_metric(state, hpa, spec, selector, current).await {
            Ok((rec, name, status)) => {
                out.statuses.push(status);
                if best.as_ref().is_none_or(|(r, _)| rec.replicas > *r) {
                    best = Some((rec.replicas, name));
                }
            }
            Err((reason, message)) => {
                invalid += 1;
                state.recorder.record(hpa, WARNING, reason, "", &message);
                if first_error.is_none() {
                    first_error = Some((reason.to_string(), message));
                }
            }
        }
    }
    if let Some((reason, message)) = &first_error {
        let replicas_lower = best.as_ref().is_some_and(|(r, _)| *r < current);
        if invalid >= specs.len() || replicas_lower {
            st.set(
                "ScalingActive",
                false,
                reason,
                &format!("the HPA was unable to compute the replica count: {message}"),
            );
            state.recorder.record(
                hpa,
                WARNING,
                "FailedComputeMetricsReplicas",
                "",
                &format!(
                    "invalid metrics ({invalid} invalid out of {}), first error is: {message}",
                    specs.len()
                ),
            );
            return out;
        }
    }
    if let Some((_, name)) = &best {
        st.set(
            "ScalingActive",
            true,
            "ValidMetricFound",
            &format!("the HPA was able to successfully calculate a replica count from {name}"),
        );
    }
    out.best = best;
    out
}

/// What a `Resource` or `ContainerResource` metric measures.
struct Measured<'a> {
    resource: &'a str,
    container: Option<&'a str>,
    target: &'a MetricTarget,
}

/// One metric's recommendation, its name as kube words it, and its status;
/// or the condition reason and message of its failure.
async fn one_metric(
    state: &State,
    hpa: &HorizontalPodAutoscaler,
    spec: &MetricSpec,
    selector: &str,
    current: i32,
) -> Result<(Recommendation, String, MetricStatus), (&'static str, String)> {
    let measured = match spec.type_.as_str() {
        "Resource" => spec.resource.as_ref().map(|r| Measured {
            resource: &r.name,
            container: None,
            target: &r.target,
        }),
        "ContainerResource" => spec.container_resource.as_ref().map(|r| Measured {
            resource: &r.name,
            container: Some(&r.container),
            target: &r.target,
        }),
        "Pods" => {
            return Err((
                "FailedGetPodsMetric",
                "unable to get metric: the custom metrics API (custom.metrics.k8s.io) is not served by korral".into(),
            ));
        }
        "Object" => {
            return Err((
                "FailedGetObjectMetric",
                "unable to get metric: the custom metrics API (custom.metrics.k8s.io) is not served by korral".into(),
            ));
        }
        "External" => {
            return Err((
                "FailedGetExternalMetric",
                "unable to get external metric: the external metrics API (external.metrics.k8s.io) is not served by korral".into(),
            ));
        }
        other => {
            return Err((
                "InvalidMetricSourceType",
                format!("unknown metric source type {other:?}"),
            ));
        }
    };
    let Some(m) = measured else {
        return Err((
            "InvalidMetricSourceType",
            format!("metric of type {:?} has no source", spec.type_),
        ));
    };
    let reason = if m.container.is_some() {
        "FailedGetContainerResourceMetric"
    } else {
        "FailedGetResourceMetric"
    };
    let fail = |e: String| {
        let what = if m.target.type_ == "Utilization" {
            "utilization"
        } else {
            "value"
        };
        (reason, format!("failed to get {} {what}: {e}", m.resource))
    };
    let ns = hpa.metadata.namespace_str();
    let client = &state.ctx.client;
    let metrics = source::pod_metrics(client, ns, selector)
        .await
        .map_err(fail)?;
    let pods = source::pods(client, ns, selector).await.map_err(fail)?;
    let target = match (
        m.target.type_.as_str(),
        m.target.average_utilization,
        m.target.average_value.as_ref(),
    ) {
        ("Utilization", Some(u), _) => Target::Utilization(u),
        ("AverageValue", _, Some(v)) => Target::AverageValue(v.millis()),
        (ty, _, _) => {
            return Err((
                reason,
                format!(
                    "invalid {} target type {ty:?} for a resource metric (Utilization with averageUtilization, or AverageValue with averageValue)",
                    m.resource
                ),
            ));
        }
    };
    let samples = pod_samples(state, &pods, &metrics, &m);
    let usage: BTreeMap<String, i64> = metrics
        .iter()
        .filter_map(|pm| {
            source::usage(pm, m.resource, m.container)
                .map(|u| (pm.metadata.name_str().to_string(), u))
        })
        .collect();
    let tolerance = state.ctx.options.hpa_tolerance;
    let rec = replicas::calculate(&samples, &usage, target, current, tolerance).map_err(fail)?;
    let current_value = MetricValueStatus {
        average_utilization: rec.utilization,
        average_value: Some(schemas::quantity::from_millis(rec.average)),
        value: None,
    };
    let (name, status) = match m.container {
        None => (
            match target {
                Target::Utilization(_) => {
                    format!(
                        "{} resource utilization (percentage of request)",
                        m.resource
                    )
                }
                Target::AverageValue(_) => format!("{} resource", m.resource),
            },
            MetricStatus {
                type_: "Resource".into(),
                resource: Some(ResourceMetricStatus {
                    name: m.resource.to_string(),
                    current: current_value,
                }),
                ..Default::default()
            },
        ),
        Some(c) => (
            match target {
                Target::Utilization(_) => format!(
                    "{} container resource utilization (percentage of request)",
                    m.resource
                ),
                Target::AverageValue(_) => format!("{} container resource", m.resource),
            },
            MetricStatus {
                type_: "ContainerResource".into(),
                container_resource: Some(ContainerResourceMetricStatus {
                    name: m.resource.to_string(),
                    container: c.to_string(),
                    current: current_value,
                }),
                ..Default::default()
            },
        ),
    };
    Ok((rec, name, status))
}

/// The calculator's view of the target's pods (kube's `groupPods` and
/// `calculatePodRequests`).
fn pod_samples(
    state: &State,
    pods: &[Pod],
    metrics: &[schemas::resource_metrics::PodMetrics],
    m: &Measured,
) -> Vec<PodSample> {
    let now = Utc::now();
    let opts = &state.ctx.options;
    let span = |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or_default();
    let by_name: HashMap<&str, &schemas::resource_metrics::PodMetrics> = metrics
        .iter()
        .map(|pm| (pm.metadata.name_str(), pm))
        .collect();
    pods.iter()
        .map(|p| {
            let name = p.metadata.name_str().to_string();
            let status = p.status.as_ref();
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
            let ignored = p.metadata.deletion_timestamp.is_some() || phase == "Failed";
            let sample = by_name.get(name.as_str());
            let unready = phase == "Pending"
                || (m.resource == "cpu"
                    && sample.is_some_and(|pm| {
                        let ready = status
                            .and_then(|s| s.conditions.as_ref())
                            .into_iter()
                            .flatten()
                            .find(|c| c.type_ == "Ready")
                            .and_then(|c| {
                                Some((c.status == "True", c.last_transition_time.as_ref()?.utc()))
                            });
                        replicas::cpu_unready(
                            now,
                            status.and_then(|s| s.start_time.as_ref()).map(|t| t.utc()),
                            ready,
                            source::sampled(pm),
                            span(opts.hpa_cpu_initialization_period),
                            span(opts.hpa_initial_readiness_delay),
                        )
                    }));
            PodSample {
                request: request(p, m),
                name,
                ignored,
                unready,
            }
        })
        .collect()
}

/// The pod's request for the measured resource, in milli-units.
fn request(p: &Pod, m: &Measured) -> Result<i64, String> {
    let mut total = 0i64;
    for c in p.spec.iter().flat_map(|s| &s.containers) {
        if m.container.is_some_and(|n| n != c.name) {
            continue;
        }
        let q = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(m.resource))
            .ok_or_else(|| {
                format!(
                    "missing request for {} in container {} of Pod {}",
                    m.resource,
                    c.name,
                    p.metadata.name_str()
                )
            })?;
        total = total.saturating_add(q.millis());
    }
    Ok(total)
}
