//! Admission webhooks, as kube-apiserver's MutatingAdmissionWebhook and
//! ValidatingAdmissionWebhook plugins call them: the webhooks of every
//! Mutating/ValidatingWebhookConfiguration whose rules, namespace and
//! object selectors and match conditions take the request get an
//! `admission.k8s.io/v1` AdmissionReview over HTTPS (a `url`, or a
//! `service` resolved through its Endpoints to a ready address, verified
//! as `NAME.NAMESPACE.svc` against `caBundle`). Mutating webhooks run one
//! after the other in configuration-name order and their JSONPatches apply
//! to the object (once more for `reinvocationPolicy: IfNeeded` when a later
//! one changed it); validating webhooks run concurrently on the object as it
//! will be written. A refusal is kube's "admission webhook "x" denied the
//! request: ..."; a webhook that cannot be called follows its
//! `failurePolicy` (Fail: 500 "failed calling webhook"); a dry run reaches
//! only webhooks whose `sideEffects` is None or NoneOnDryRun.
//!
//! The webhooks that may apply are chosen from the request's attributes
//! before the write ([`Webhooks::prepare`]); the registry calls them
//! ([`Calls::mutate`], [`Calls::validate`]) where kube's chain does: after
//! the built-in mutating plugins, before the validating ones, on every
//! retry of an update.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, MutatingWebhook, MutatingWebhookConfiguration,
    NamedRuleWithOperations, RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemas::{KindInfo, SelectorExt};
use serde_json::{Value, json};

use crate::admission::Warnings;
use crate::admission::policies::{self, Attributes};
use crate::errors::{ApiError, ApiResult};
use crate::registry::Registry;
use crate::watched::{Watched, decode_all};

const KINDS: &[(&str, &str)] = &[
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    ),
];

/// Where kube's webhooks are dialled when no `caBundle` is given: the
/// system's trust roots (Debian's bundle).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One webhook, mutating or validating, as the dispatcher needs it.
#[derive(Clone, Debug)]
struct Hook {
    name: String,
    client: WebhookClientConfig,
    rules: Vec<RuleWithOperations>,
    namespace_selector: Option<LabelSelector>,
    object_selector: Option<LabelSelector>,
    match_conditions: Vec<MatchCondition>,
    fail_closed: bool,
    timeout: Duration,
    /// `None` or `NoneOnDryRun`: may be called for a dry run.
    dry_run_safe: bool,
    reinvoke: bool,
    /// A mutating webhook (only these may answer with a patch).
    mutating: bool,
    /// The AdmissionReview version to send (`v1` or `v1beta1`).
    review_version: &'static str,
}

/// A webhook of either kind; `reinvoke` is `Some(IfNeeded)` for a mutating
/// webhook and `None` for a validating one.
#[allow(clippy::too_many_arguments)]
fn hook(
    name: &str,
    client: &WebhookClientConfig,
    rules: &Option<Vec<RuleWithOperations>>,
    namespace_selector: &Option<LabelSelector>,
    object_selector: &Option<LabelSelector>,
    match_conditions: &Option<Vec<MatchCondition>>,
    failure_policy: &Option<String>,
    timeout_seconds: Option<i32>,
    side_effects: &str,
    review_versions: &[String],
    reinvoke: Option<bool>,
) -> Hook {
    Hook {
        name: name.to_string(),
        client: client.clone(),
        rules: rules.clone().unwrap_or_default(),
        namespace_selector: namespace_selector.clone(),
        object_selector: object_selector.clone(),
        match_conditions: match_conditions.clone().unwrap_or_default(),
        fail_closed: failure_policy.as_deref() != Some("Ignore"),
        timeout: Duration::from_secs(timeout_seconds.unwrap_or(10).clamp(1, 30) as u64),
        dry_run_safe: matches!(side_effects, "None" | "NoneOnDryRun"),
        reinvoke: reinvoke.unwrap_or(false),
        mutating: reinvoke.is_some(),
        review_version: if review_versions.iter().any(|v| v == "v1")
            || !review_versions.iter().any(|v| v == "v1beta1")
        {
            "v1"
        } else {
            "v1beta1"
        },
    }
}

fn of_mutating(w: &MutatingWebhook) -> Hook {
    hook(
        &w.name,
        &w.client_config,
        &w.rules,
        &w.namespace_selector,
        &w.object_selector,
        &w.match_conditions,
        &w.failure_policy,
        w.timeout_seconds,
        &w.side_effects,
        &w.admission_review_versions,
        Some(w.reinvocation_policy.as_deref() == Some("IfNeeded")),
    )
}

fn of_validating(w: &ValidatingWebhook) -> Hook {
    hook(
        &w.name,
        &w.client_config,
        &w.rules,
        &w.namespace_selector,
        &w.object_selector,
        &w.match_conditions,
        &w.failure_policy,
        w.timeout_seconds,
        &w.side_effects,
        &w.admission_review_versions,
        None,
    )
}

/// The webhooks of the moment, each list in kube's order (configurations
/// by name, webhooks in their configuration's order).
#[derive(Default)]
pub struct Webhooks {
    mutating: Vec<Hook>,
    validating: Vec<Hook>,
}

/// The cache the server keeps them in.
pub type WebhookCache = Watched<Webhooks>;

/// A webhook cache, empty until started.
pub fn cache() -> WebhookCache {
    Watched::new(KINDS, |lists| {
        let mut lists = lists.into_iter();
        let mut mutating: Vec<MutatingWebhookConfiguration> =
            decode_all(lists.next().unwrap_or_default());
        let mut validating: Vec<ValidatingWebhookConfiguration> =
            decode_all(lists.next().unwrap_or_default());
        mutating.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        validating.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Webhooks {
            mutating: mutating
                .iter()
                .flat_map(|c| c.webhooks.iter().flatten().map(of_mutating))
                .collect(),
            validating: validating
                .iter()
                .flat_map(|c| c.webhooks.iter().flatten().map(of_validating))
                .collect(),
        }
    })
}

/// The rules and namespace selector of a webhook as the policies' match
/// constraints read them (the object selector waits for the object).
fn constraints(h: &Hook, info: &KindInfo) -> MatchResources {
    MatchResources {
        resource_rules: Some(
            h.rules
                .iter()
                .map(|r| NamedRuleWithOperations {
                    api_groups: r.api_groups.clone(),
                    api_versions: r.api_versions.clone(),
                    operations: r.operations.clone(),
                    resources: r.resources.clone(),
                    scope: r.scope.clone(),
                    resource_names: None,
                })
                .collect(),
        ),
        // a Namespace is selected by its own labels, once the object is known
        namespace_selector: h
            .namespace_selector
            .clone()
            .filter(|_| !info.is("", "Namespace")),
        ..Default::default()
    }
}

impl Webhooks {
    /// Whether there is no webhook at all.
    pub fn is_empty(&self) -> bool {
        self.mutating.is_empty() && self.validating.is_empty()
    }

    /// The webhooks whose rules and namespace selector take the request
    /// (`None` when none does, or for the admission configuration kinds,
    /// which kube never sends to webhooks). `options` is the request's
    /// Create/Update/Patch/DeleteOptions as the review carries them.
    pub fn prepare(
        &self,
        a: &Attributes<'_>,
        namespace_object: &Value,
        options: Value,
    ) -> Option<Arc<Calls>> {
        if self.is_empty() || a.info.group == "admissionregistration.k8s.io" {
            return None;
        }
        let take = |hooks: &[Hook]| -> Vec<Hook> {
            hooks
                .iter()
                .filter(|h| {
                    // no rule matches nothing
                    !h.rules.is_empty()
                        && policies::resources_match(&constraints(h, a.info), a, namespace_object)
                })
                .cloned()
                .collect()
        };
        let mutating = take(&self.mutating);
        let validating = take(&self.validating);
        if mutating.is_empty() && validating.is_empty() {
            return None;
        }
        let resource =
            json!({"group": a.info.group, "version": a.info.version, "resource": a.info.plural});
        let kind = json!({"group": a.info.group, "version": a.info.version, "kind": a.info.kind});
        let mut request = json!({
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "operation": a.operation,
            "userInfo": a.user_info,
            "dryRun": a.dry_run,
            "options": options,
        });
        for (field, value) in [
            ("subResource", a.subresource.unwrap_or("")),
            ("requestSubResource", a.subresource.unwrap_or("")),
            ("name", a.name),
            (
                "namespace",
                a.namespace.filter(|_| a.info.namespaced).unwrap_or(""),
            ),
        ] {
            if !value.is_empty() {
                request[field] = json!(value);
            }
        }
        Some(Arc::new(Calls {
            mutating,
            validating,
            request,
            namespace_kind: a.info.is("", "Namespace"),
            dry_run: a.dry_run,
        }))
    }
}

/// The webhooks that may apply to one request, ready to be called.
pub struct Calls {
    mutating: Vec<Hook>,
    validating: Vec<Hook>,
    /// The AdmissionRequest without uid and objects.
    request: Value,
    namespace_kind: bool,
    dry_run: bool,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |h: &[Hook]| h.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
        f.debug_struct("Calls")
            .field("mutating", &names(&self.mutating))
            .field("validating", &names(&self.validating))
            .finish()
    }
}

/// A webhook that could not be called (or answered nonsense): kube's
/// ErrCallingWebhook, which the failure policy decides on.
struct CallError(String);

/// What one call concluded.
enum Answer {
    /// Not selected (object selector, match conditions) or ignored by its failure policy.
    Skipped,
    /// Allowed; for a mutating webhook, the object after its patch.
    Allowed(Option<Value>),
}

fn labels_of(v: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    v.and_then(|v| v.pointer("/metadata/labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// A selector taking either the object or the old object (kube's rule for
/// object selectors).
fn selects(sel: Option<&LabelSelector>, object: Option<&Value>, old: Option<&Value>) -> bool {
    let Some(sel) = sel else { return true };
    sel.is_empty()
        || [object, old]
            .into_iter()
            .flatten()
            .any(|o| sel.matches(&labels_of(Some(o))))
}

impl Calls {
    /// Whether any mutating webhook may apply.
    pub fn has_mutating(&self) -> bool {
        !self.mutating.is_empty()
    }

    /// Runs the mutating webhooks on `object` (the new object; `old` for
    /// updates) and returns it as they left it.
    pub async fn mutate(
        &self,
        registry: &Registry,
        mut object: Value,
        old: Option<&Value>,
        warnings: &Warnings,
    ) -> ApiResult<Value> {
        let mut last_change = None;
        for (i, h) in self.mutating.iter().enumerate() {
            if let Answer::Allowed(Some(patched)) =
                self.call(registry, h, Some(&object), old, warnings).await?
                && patched != object
            {
                object = patched;
                last_change = Some(i);
            }
        }
        // reinvocationPolicy IfNeeded: once more for the webhooks called
        // before a later one changed the object
        if let Some(last) = last_change {
            for h in self.mutating[..last].iter().filter(|h| h.reinvoke) {
                if let Answer::Allowed(Some(patched)) =
                    self.call(registry, h, Some(&object), old, warnings).await?
                {
                    object = patched;
                }
            }
        }
        Ok(object)
    }

    /// Runs the validating webhooks (concurrently) on the object as it will
    /// be written (`None` for a delete, with `old` the object deleted); the
    /// first refusal in webhook order is the answer.
    pub async fn validate(
        &self,
        registry: &Registry,
        object: Option<&Value>,
        old: Option<&Value>,
        warnings: &Warnings,
    ) -> ApiResult<()> {
        let calls = self
            .validating
            .iter()
            .map(|h| self.call(registry, h, object, old, warnings));
        for answer in futures_util::future::join_all(calls).await {
            answer?;
        }
        Ok(())
    }

    /// Calls one webhook, applying its selector, match conditions, dry-run
    /// rule and failure policy.
    async fn call(
        &self,
        registry: &Registry,
        h: &Hook,
        object: Option<&Value>,
        old: Option<&Value>,
        warnings: &Warnings,
    ) -> ApiResult<Answer> {
        if !selects(h.object_selector.as_ref(), object, old) {
            return Ok(Answer::Skipped);
        }
        if self.namespace_kind && !selects(h.namespace_selector.as_ref(), object, old) {
            return Ok(Answer::Skipped);
        }
        let outcome = match self.matches_conditions(h, object, old) {
            Ok(false) => return Ok(Answer::Skipped),
            Ok(true) if self.dry_run && !h.dry_run_safe => {
                return Err(ApiError::bad_request(format!(
                    "admission webhook {:?} does not support dry run",
                    h.name
                )));
            }
            Ok(true) => self.post(registry, h, object, old, warnings).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(answer) => Ok(answer),
            Err(Refusal::Denied(e)) => Err(*e),
            Err(Refusal::Failed(CallError(why))) => {
                let text = format!("failed calling webhook {:?}: {why}", h.name);
                if h.fail_closed {
                    tracing::warn!(webhook = %h.name, error = %why, "failed calling webhook, failing closed");
                    Err(ApiError::internal(text))
                } else {
                    tracing::warn!(webhook = %h.name, error = %why, "failed calling webhook, failing open");
                    Ok(Answer::Skipped)
                }
            }
        }
    }

    /// The webhook's `matchConditions` (CEL over `object`, `oldObject` and
    /// `request`); an expression that fails is a call error.
    fn matches_conditions(
        &self,
        h: &Hook,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<bool, Refusal> {
        if h.match_conditions.is_empty() {
            return Ok(true);
        }
        let object = object.cloned().unwrap_or(Value::Null);
        let old = old.cloned().unwrap_or(Value::Null);
        let refs: Vec<(&str, &Value)> = vec![
            ("object", &object),
            ("oldObject", &old),
            ("request", &self.request),
        ];
        for mc in &h.match_conditions {
            match policies::cel_bool(&mc.expression, &refs) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(why) => {
                    return Err(Refusal::Failed(CallError(format!(
                        "matchCondition {:?} failed: {why}",
                        mc.name
                    ))));
                }
            }
        }
        Ok(true)
    }

    /// Sends the AdmissionReview and reads the answer.
    async fn post(
        &self,
        registry: &Registry,
        h: &Hook,
        object: Option<&Value>,
        old: Option<&Value>,
        warnings: &Warnings,
    ) -> Result<Answer, Refusal> {
        let uid = uuid::Uuid::new_v4().to_string();
        let mut request = self.request.clone();
        request["uid"] = json!(uid);
        request["object"] = object.cloned().unwrap_or(Value::Null);
        request["oldObject"] = old.cloned().unwrap_or(Value::Null);
        let api_version = format!("admission.k8s.io/{}", h.review_version);
        let review =
            json!({"apiVersion": api_version, "kind": "AdmissionReview", "request": request});
        let target = resolve(registry, &h.client, h.timeout)
            .await
            .map_err(Refusal::Failed)?;
        let client = target
            .client(&h.client, h.timeout)
            .map_err(Refusal::Failed)?;
        let sent = client
            .post(&target.dial_url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .json(&review)
            .send()
            .await;
        let failed = |why: String| {
            Refusal::Failed(CallError(format!(
                "failed to call webhook: Post {:?}: {why}",
                target.shown_url
            )))
        };
        let response = sent.map_err(|e| failed(transport_error(&e, &target.dial_url)))?;
        let code = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(transport_error(&e, &target.dial_url)))?;
        if !code.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(failed(format!(
                "an error on the server ({:?}) has prevented the request from succeeding",
                text.trim()
            )));
        }
        let invalid = |why: String| {
            Refusal::Failed(CallError(format!(
                "received invalid webhook response: {why}"
            )))
        };
        let answer: Value = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        if answer.get("apiVersion").and_then(Value::as_str) != Some(api_version.as_str())
            || answer.get("kind").and_then(Value::as_str) != Some("AdmissionReview")
        {
            return Err(invalid(format!(
                "expected webhook response of {api_version}, Kind=AdmissionReview, got {}, Kind={}",
                answer
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                answer.get("kind").and_then(Value::as_str).unwrap_or("")
            )));
        }
        let response = answer
            .get("response")
            .filter(|r| r.is_object())
            .ok_or_else(|| invalid("webhook response was absent".into()))?;
        let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
        if got_uid != uid {
            return Err(invalid(format!(
                "expected response.uid={uid:?}, got {got_uid:?}"
            )));
        }
        for w in response
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            warnings.add(w);
        }
        if response.get("allowed").and_then(Value::as_bool) != Some(true) {
            return Err(Refusal::Denied(Box::new(denied(
                &h.name,
                response.get("status").unwrap_or(&Value::Null),
            ))));
        }
        let patch = response.get("patch").and_then(Value::as_str).unwrap_or("");
        if patch.is_empty() {
            return Ok(Answer::Allowed(None));
        }
        if !h.mutating {
            return Err(invalid("validating webhook may not return a patch".into()));
        }
        match response.get("patchType").and_then(Value::as_str) {
            Some("JSONPatch") => {}
            other => {
                return Err(invalid(format!(
                    "webhook returned a patch of type {:?}; only \"JSONPatch\" is supported",
                    other.unwrap_or("")
                )));
            }
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .map_err(|e| invalid(format!("the patch is not base64: {e}")))?;
        let ops = crate::patch::json_patch::parse(&bytes)
            .map_err(|e| invalid(format!("the patch: {}", e)))?;
        let base = object.cloned().unwrap_or(Value::Null);
        let patched = crate::patch::json_patch::apply_json_patch(&base, &ops).map_err(|e| {
            Refusal::Denied(Box::new(ApiError::internal(format!(
                "admission webhook {:?} returned a patch that cannot be applied: {}",
                h.name, e
            ))))
        })?;
        Ok(Answer::Allowed(Some(patched)))
    }
}

/// Why a call did not allow the request.
enum Refusal {
    /// The webhook said no (or its patch is unusable): the request fails whatever the policy.
    Denied(Box<ApiError>),
    /// The webhook could not be called: the failure policy decides.
    Failed(CallError),
}

/// kube's ToStatusErr: a refusal keeps the webhook's code (at least 400)
/// and reason, its message prefixed with the webhook's name.
fn denied(name: &str, status: &Value) -> ApiError {
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let by = format!("admission webhook {name:?} denied the request");
    let text = if !message.is_empty() {
        format!("{by}: {message}")
    } else if !reason.is_empty() {
        format!("{by}: {reason}")
    } else {
        format!("{by} without explanation")
    };
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400) as u16;
    ApiError::with_reason(code, known_reason(reason), text)
}

/// The reasons kube defines (a webhook's own reason text is kept only when
/// it is one of them).
fn known_reason(reason: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    KNOWN.iter().find(|k| **k == reason).copied().unwrap_or("")
}

/// A transport error as Go's HTTP client words it (`dial tcp ADDR:
/// connect: connection refused`, `context deadline exceeded`), else its
/// causes on one line (reqwest's own text says only "error sending
/// request").
fn transport_error(e: &reqwest::Error, dialled: &str) -> String {
    if e.is_timeout() {
        return "context deadline exceeded".into();
    }
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let deepest = causes.last().cloned().unwrap_or_else(|| e.to_string());
    if e.is_connect() {
        let reason = deepest
            .split(" (os error")
            .next()
            .unwrap_or(&deepest)
            .to_lowercase();
        let addr = reqwest::Url::parse(dialled)
            .ok()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
            .unwrap_or_default();
        return format!("dial tcp {addr}: connect: {reason}");
    }
    causes.dedup();
    if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    }
}

/// Where one call goes.
struct Target {
    /// The URL requested (for a service, its DNS name with the endpoint's port).
    dial_url: String,
    /// The URL errors name (as kube's: the service's name and port).
    shown_url: String,
    /// For a service: its DNS name pinned to the endpoint chosen.
    pin: Option<(String, SocketAddr)>,
}

fn with_timeout(url: &str, timeout: Duration) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}timeout={}s", timeout.as_secs())
}

/// Resolves a webhook's client configuration: a `url` as given, a
/// `service` to one ready address of its Endpoints (kube-apiserver's
/// endpoint routing) on the port the Service's `port` leads to.
async fn resolve(
    registry: &Registry,
    config: &WebhookClientConfig,
    timeout: Duration,
) -> Result<Target, CallError> {
    if let Some(url) = config.url.as_deref() {
        if !url.starts_with("https://") {
            return Err(CallError(format!(
                "the webhook's url {url:?} must use https"
            )));
        }
        let url = with_timeout(url, timeout);
        return Ok(Target {
            dial_url: url.clone(),
            shown_url: url,
            pin: None,
        });
    }
    let Some(svc) = &config.service else {
        return Err(CallError(
            "the webhook has neither a url nor a service".into(),
        ));
    };
    let ns = svc.namespace.as_str();
    let port = svc.port.unwrap_or(443);
    let path = svc.path.as_deref().unwrap_or("");
    let host = format!("{}.{ns}.svc", svc.name);
    let shown_url = with_timeout(&format!("https://{host}:{port}{path}"), timeout);
    let addr = endpoint(registry, ns, &svc.name, port).await?;
    Ok(Target {
        dial_url: with_timeout(&format!("https://{host}:{}{path}", addr.port()), timeout),
        shown_url,
        pin: Some((host, addr)),
    })
}

/// A ready address of the service behind `port` (chosen at random, as
/// kube's resolver does).
async fn endpoint(
    registry: &Registry,
    ns: &str,
    name: &str,
    port: i32,
) -> Result<SocketAddr, CallError> {
    use rand::seq::IndexedRandom;
    let lookup = |k: &str| schemas::lookup("v1", k).map_err(|e| CallError(e.to_string()));
    let service = registry
        .get(lookup("Service")?, Some(ns), name)
        .await
        .map_err(|e| CallError(e.message))?;
    let port_name = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(i64::from(port)))
        .map(|p| {
            p.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .ok_or_else(|| CallError(format!("no service port {port} found for service {name:?}")))?;
    let none = || CallError(format!("no endpoints available for service {name:?}"));
    let endpoints = registry
        .get(lookup("Endpoints")?, Some(ns), name)
        .await
        .map_err(|_| none())?;
    for subset in endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(target_port) = subset
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
        else {
            continue;
        };
        let ips: Vec<std::net::IpAddr> = subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("ip").and_then(Value::as_str)?.parse().ok())
            .collect();
        if let Some(ip) = ips.choose(&mut rand::rng()) {
            let port = u16::try_from(target_port).map_err(|_| none())?;
            return Ok(SocketAddr::new(*ip, port));
        }
    }
    Err(none())
}

/// The system's trust roots, read once (webhooks without a `caBundle`).
fn system_roots() -> Result<&'static Vec<u8>, &'static String> {
    static ROOTS: std::sync::OnceLock<Result<Vec<u8>, String>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            std::fs::read(SYSTEM_ROOTS).map_err(|e| {
                format!(
                    "the webhook has no caBundle and the system's roots ({SYSTEM_ROOTS}) cannot be read: {e}"
                )
            })
        })
        .as_ref()
}

impl Target {
    /// An HTTPS client trusting the webhook's `caBundle` (else the
    /// system's roots), with the service's name pinned to its endpoint.
    fn client(
        &self,
        config: &WebhookClientConfig,
        timeout: Duration,
    ) -> Result<reqwest::Client, CallError> {
        let bundle = match config.ca_bundle.as_ref().filter(|b| !b.0.is_empty()) {
            Some(b) => b.0.clone(),
            None => system_roots().map_err(|e| CallError(e.clone()))?.clone(),
        };
        let roots = reqwest::Certificate::from_pem_bundle(&bundle)
            .map_err(|e| CallError(format!("the webhook's caBundle: {e}")))?;
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent("korral-apiserver");
        for root in roots {
            b = b.add_root_certificate(root);
        }
        if let Some((host, addr)) = &self.pin {
            b = b.resolve(host, *addr);
        }
        b.build().map_err(|e| CallError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_as_kube_tostatuserr() {
        let e = denied(
            "deny.example.com",
            &json!({"code": 403, "reason": "Forbidden", "message": "no thanks"}),
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "admission webhook \"deny.example.com\" denied the request: no thanks"
        );
        let e = denied("d", &json!({"code": 200}));
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "admission webhook \"d\" denied the request without explanation"
        );
        let e = denied("d", &json!({"reason": "Because"}));
        assert_eq!(
            e.message,
            "admission webhook \"d\" denied the request: Because"
        );
        assert_eq!(e.reason, "");
    }

    #[test]
    fn the_timeout_joins_the_query() {
        let t = Duration::from_secs(7);
        assert_eq!(with_timeout("https://h/x", t), "https://h/x?timeout=7s");
        assert_eq!(
            with_timeout("https://h/x?a=b", t),
            "https://h/x?a=b&timeout=7s"
        );
    }

    #[test]
    fn webhooks_without_v1_reviews_get_v1beta1() {
        let w = |versions: &[&str]| MutatingWebhook {
            name: "m".into(),
            admission_review_versions: versions.iter().map(|v| v.to_string()).collect(),
            side_effects: "None".into(),
            ..Default::default()
        };
        assert_eq!(of_mutating(&w(&["v1beta1"])).review_version, "v1beta1");
        assert_eq!(of_mutating(&w(&["v1beta1", "v1"])).review_version, "v1");
        assert!(of_mutating(&w(&["v1"])).dry_run_safe);
        assert!(of_mutating(&w(&["v1"])).fail_closed);
    }
}
