//! Notifications about GitSources: a Kubernetes Event on the source for
//! every sync, failure, drift and heal, and the same sent to each
//! `Notifier` of the source's namespace that asks for it — Flux's event
//! JSON (`generic`), the same signed with HMAC-SHA256 in `X-Signature:
//! sha256=<hex>` (`generic-hmac`), or a Slack-compatible payload (`slack`)
//! — posted in the background and retried with back-off.

use std::sync::OnceLock;
use std::time::Duration;

use ring::hmac;
use serde_json::{Value, json};

use k8s_openapi::api::core::v1::Secret;
use reconcilers::runtime::{Client, ListParams};
use schemas::MetaExt;
use schemas::korral::{GitSource, Notifier};

use crate::owner::MANAGER;

/// How serious a notice is (Flux's event severities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A sync or a heal.
    Info,
    /// A failure or drift.
    Error,
}

impl Severity {
    /// `info` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Error => "error",
        }
    }
}

/// One thing that happened to a source.
#[derive(Clone, Debug)]
pub struct Notice {
    /// How serious.
    pub severity: Severity,
    /// The Event reason (`Synced`, `SyncFailed`, `DriftDetected`, `SelfHealed`).
    pub reason: String,
    /// One line.
    pub message: String,
    /// The revision concerned, if known.
    pub revision: Option<String>,
}

/// Attempts per notification (the first and the retries).
const ATTEMPTS: u32 = 5;
/// The first retry's delay; doubled for each next one.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// Records `notice` as an Event on `source` and sends it to the Notifiers
/// that want it (in the background; failures are logged and retried).
pub async fn notify(client: &Client, source: &GitSource, notice: &Notice) {
    let type_ = match notice.severity {
        Severity::Info => "Normal",
        Severity::Error => "Warning",
    };
    reconcilers::controllers::record_event(
        client,
        source,
        type_,
        &notice.reason,
        &notice.message,
        MANAGER,
    )
    .await;
    let ns = source.metadata.namespace_str();
    let notifiers = match client
        .api::<Notifier>(Some(ns))
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(namespace = ns, error = %e, "cannot list the Notifiers");
            return;
        }
    };
    for n in notifiers
        .iter()
        .filter(|n| wants(n, source, notice.severity))
    {
        match delivery(client, n, source, notice).await {
            Ok(d) => {
                tokio::spawn(send(d));
            }
            Err(e) => {
                tracing::warn!(notifier = %format!("{ns}/{}", n.metadata.name_str()), "cannot notify: {e}")
            }
        }
    }
}

/// Whether notifier `n` reports `severity` about `source`.
pub fn wants(n: &Notifier, source: &GitSource, severity: Severity) -> bool {
    let Some(spec) = &n.spec else {
        return false;
    };
    if spec.suspend == Some(true)
        || (spec.event_severity.as_deref() == Some("error") && severity != Severity::Error)
    {
        return false;
    }
    spec.event_sources.as_ref().is_none_or(|list| {
        list.iter()
            .any(|r| r.name == "*" || r.name == source.metadata.name_str())
    })
}

/// One POST, ready to send.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Where.
    pub url: String,
    /// The JSON body.
    pub body: Vec<u8>,
    /// `X-Signature`, for `generic-hmac`.
    pub signature: Option<String>,
    /// The notifier, for logs.
    pub notifier: String,
}

async fn delivery(
    client: &Client,
    n: &Notifier,
    source: &GitSource,
    notice: &Notice,
) -> Result<Delivery, String> {
    let spec = n.spec.clone().unwrap_or_default();
    let ns = n.metadata.namespace_str();
    let mut address = spec.address.clone().filter(|a| !a.is_empty());
    let mut token = None;
    if let Some(r) = &spec.secret_ref {
        let secret = client
            .api::<Secret>(Some(ns))
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("cannot read Secret {ns}/{}: {e}", r.name))?
            .ok_or_else(|| format!("Secret {ns}/{} does not exist", r.name))?;
        let data = secret.data.unwrap_or_default();
        let text = |k: &str| {
            data.get(k)
                .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        };
        if let Some(a) = text("address").filter(|a| !a.is_empty()) {
            address = Some(a);
        }
        token = data.get("token").map(|b| b.0.clone());
    }
    let url = address.ok_or("no address (spec.address or the Secret's `address`)")?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = match spec.type_.as_str() {
        "slack" => slack_payload(source, notice),
        _ => event_payload(source, notice, &now),
    };
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let signature = match spec.type_.as_str() {
        "generic-hmac" => {
            let key = token.ok_or("generic-hmac needs the Secret's `token` (the HMAC key)")?;
            Some(signature(&key, &body))
        }
        _ => None,
    };
    Ok(Delivery {
        url,
        body,
        signature,
        notifier: format!("{ns}/{}", n.metadata.name_str()),
    })
}

/// Flux's event JSON (notification-controller's `eventv1.Event`).
pub fn event_payload(source: &GitSource, notice: &Notice, timestamp: &str) -> Value {
    let m = &source.metadata;
    let mut metadata = serde_json::Map::new();
    if let Some(r) = &notice.revision {
        metadata.insert("revision".into(), json!(r));
    }
    json!({
        "involvedObject": {
            "apiVersion": "korral.dev/v1alpha1",
            "kind": "GitSource",
            "namespace": m.namespace_str(),
            "name": m.name_str(),
            "uid": m.uid,
            "resourceVersion": m.resource_version,
        },
        "severity": notice.severity.as_str(),
        "timestamp": timestamp,
        "message": notice.message,
        "reason": notice.reason,
        "metadata": metadata,
        "reportingController": MANAGER,
        "reportingInstance": MANAGER,
    })
}

/// A Slack-compatible payload (incoming webhooks; Mattermost and others
/// accept it too): one attachment, green for info, red for errors.
pub fn slack_payload(source: &GitSource, notice: &Notice) -> Value {
    let m = &source.metadata;
    let mut fields = vec![json!({"title": "reason", "value": notice.reason, "short": true})];
    if let Some(r) = &notice.revision {
        fields.push(json!({"title": "revision", "value": r, "short": false}));
    }
    json!({
        "username": "korral",
        "attachments": [{
            "color": if notice.severity == Severity::Error { "danger" } else { "good" },
            "author_name": format!("gitsource/{}/{}", m.namespace_str(), m.name_str()),
            "text": notice.message,
            "mrkdwn_in": ["text"],
            "fields": fields,
        }],
    })
}

/// `sha256=<hex>` of HMAC-SHA256 of `body` keyed by `key` (Flux's
/// `X-Signature`).
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default()
    })
}

/// Posts `d`, retrying failures (no answer, 5xx, 429) with back-off.
pub async fn send(d: Delivery) {
    let mut delay = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        let mut req = http()
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(d.body.clone());
        if let Some(s) = &d.signature {
            req = req.header("X-Signature", s);
        }
        let retry = match req.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(notifier = %d.notifier, "notification sent");
                return;
            }
            Ok(r) => {
                let code = r.status();
                tracing::warn!(notifier = %d.notifier, attempt, %code, "the receiver refused the notification");
                code.is_server_error() || code.as_u16() == 429
            }
            Err(e) => {
                tracing::warn!(notifier = %d.notifier, attempt, error = %e, "cannot send the notification");
                true
            }
        };
        if !retry || attempt == ATTEMPTS {
            break;
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    tracing::warn!(notifier = %d.notifier, "notification dropped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use schemas::korral::{LocalObjectReference, NotifierSpec};

    fn source() -> GitSource {
        GitSource {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn failure() -> Notice {
        Notice {
            severity: Severity::Error,
            reason: "SyncFailed".into(),
            message: "revision abc: 1 error".into(),
            revision: Some("abc".into()),
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_in_hex() {
        // RFC 4231 test case 2
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn payloads_have_flux_and_slack_shapes() {
        let e = event_payload(&source(), &failure(), "2026-12-07T16:00:00Z");
        assert_eq!(e["involvedObject"]["kind"], "GitSource");
        assert_eq!(e["involvedObject"]["namespace"], "prod");
        assert_eq!(e["involvedObject"]["name"], "web");
        assert_eq!(e["severity"], "error");
        assert_eq!(e["reason"], "SyncFailed");
        assert_eq!(e["metadata"]["revision"], "abc");
        assert_eq!(e["timestamp"], "2026-12-07T16:00:00Z");
        let s = slack_payload(&source(), &failure());
        let a = &s["attachments"][0];
        assert_eq!(a["color"], "danger");
        assert_eq!(a["author_name"], "gitsource/prod/web");
        assert_eq!(a["text"], "revision abc: 1 error");
        assert_eq!(a["fields"][1]["value"], "abc");
    }

    #[test]
    fn notifiers_filter_by_source_and_severity() {
        let mut n = Notifier {
            spec: Some(NotifierSpec {
                type_: "generic".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(wants(&n, &source(), Severity::Info));
        if let Some(s) = n.spec.as_mut() {
            s.event_severity = Some("error".into());
        }
        assert!(!wants(&n, &source(), Severity::Info));
        assert!(wants(&n, &source(), Severity::Error));
        if let Some(s) = n.spec.as_mut() {
            s.event_sources = Some(vec![LocalObjectReference {
                name: "other".into(),
            }]);
        }
        assert!(!wants(&n, &source(), Severity::Error));
        if let Some(s) = n.spec.as_mut() {
            s.event_sources = Some(vec![LocalObjectReference { name: "*".into() }]);
            s.suspend = Some(true);
        }
        assert!(!wants(&n, &source(), Severity::Error));
    }
}
