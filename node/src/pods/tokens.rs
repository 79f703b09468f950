//! ServiceAccount tokens for projected `serviceAccountToken` volume sources,
//! as the kubelet's token manager keeps them: requested from the API server
//! (TokenRequest bound to the pod), cached per pod, account, audience and
//! lifetime, and renewed once 80% of the lifetime or 24 hours have passed.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use reconcilers::runtime::Client;
use schemas::MetaExt;
use serde_json::{Value, json};

/// What a token is cached by.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    pod_uid: String,
    namespace: String,
    account: String,
    audience: Option<String>,
    seconds: i64,
}

#[derive(Clone, Debug)]
struct Issued {
    token: String,
    issued: DateTime<Utc>,
    expires: DateTime<Utc>,
}

impl Issued {
    /// The kubelet's rule: renew after 80% of the lifetime or a day.
    fn needs_renewal(&self, now: DateTime<Utc>) -> bool {
        let lifetime = self.expires - self.issued;
        now >= self.expires - lifetime / 5 || now - self.issued > Duration::hours(24)
    }
}

/// The node's cache of issued tokens.
#[derive(Default)]
pub struct Tokens {
    issued: Mutex<HashMap<Key, Issued>>,
}

impl Tokens {
    /// A token of the pod's ServiceAccount for `audience` (the API server's
    /// when `None`) lasting `seconds`, from the cache while it is fresh.
    pub async fn get(
        &self,
        client: &Client,
        pod: &Pod,
        audience: Option<&str>,
        seconds: i64,
    ) -> Result<String, String> {
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let key = Key {
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace_str().to_string(),
            account,
            audience: audience.filter(|a| !a.is_empty()).map(str::to_string),
            seconds,
        };
        let now = Utc::now();
        if let Some(t) = self.cached(&key)
            && !t.needs_renewal(now)
        {
            return Ok(t.token);
        }
        let issued = request(client, pod, &key).await?;
        let token = issued.token.clone();
        if let Ok(mut m) = self.issued.lock() {
            // forget tokens that expired (their pods are gone or renewed)
            m.retain(|_, t| t.expires > now);
            m.insert(key, issued);
        }
        Ok(token)
    }

    fn cached(&self, key: &Key) -> Option<Issued> {
        self.issued.lock().ok()?.get(key).cloned()
    }

    /// Drops the tokens of a pod that left the node.
    pub fn forget(&self, pod_uid: &str) {
        if let Ok(mut m) = self.issued.lock() {
            m.retain(|k, _| k.pod_uid != pod_uid);
        }
    }
}

async fn request(client: &Client, pod: &Pod, key: &Key) -> Result<Issued, String> {
    let mut spec = json!({
        "expirationSeconds": key.seconds,
        "boundObjectRef": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod.metadata.name_str(),
            "uid": key.pod_uid,
        },
    });
    if let Some(a) = &key.audience {
        spec["audiences"] = json!([a]);
    }
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": spec,
    });
    let what = || format!("token of service account {}/{}", key.namespace, key.account);
    let tr = client
        .api::<ServiceAccount>(Some(&key.namespace))
        .create_subresource(&key.account, "token", &body)
        .await
        .map_err(|e| format!("{}: {e}", what()))?;
    let token = tr
        .pointer("/status/token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{}: the TokenRequest came back without a token", what()))?;
    let now = Utc::now();
    let expires = tr
        .pointer("/status/expirationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now + Duration::seconds(key.seconds));
    Ok(Issued {
        token: token.to_string(),
        issued: now,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_after_eighty_percent_or_a_day() {
        let issued = Utc::now();
        let t = Issued {
            token: "t".into(),
            issued,
            expires: issued + Duration::seconds(3600),
        };
        assert!(!t.needs_renewal(issued + Duration::seconds(2879)));
        assert!(t.needs_renewal(issued + Duration::seconds(2880)));
        let long = Issued {
            expires: issued + Duration::days(365),
            ..t
        };
        assert!(!long.needs_renewal(issued + Duration::hours(23)));
        assert!(long.needs_renewal(issued + Duration::hours(25)));
    }
}
