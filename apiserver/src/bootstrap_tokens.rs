//! Bootstrap tokens, as kube-apiserver's bootstrap token authenticator
//! reads them: a bearer token `ID.SECRET` (`[a-z0-9]{6}.[a-z0-9]{16}`)
//! authenticates as `system:bootstrap:ID` in `system:bootstrappers` (and
//! the Secret's `auth-extra-groups`) while the Secret
//! `kube-system/bootstrap-token-ID` of type `bootstrap.kubernetes.io/token`
//! holds that secret, allows `usage-bootstrap-authentication`, is not being
//! deleted and has not passed its `expiration`. Joining nodes use them
//! (`kubeadm token create` writes such Secrets; so can `kubectl`).

use base64::Engine;
use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::registry::Registry;

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// The group every bootstrap token's user is in.
pub const GROUP: &str = "system:bootstrappers";

/// The token id and secret of a token of the bootstrap form.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// The user and groups (with `system:authenticated`) a bootstrap token
/// authenticates, or 401.
pub async fn authenticate(registry: &Registry, token: &str) -> ApiResult<(String, Vec<String>)> {
    let (id, secret) = parse(token).ok_or_else(ApiError::unauthorized)?;
    let info = schemas::lookup("v1", "Secret").map_err(|e| ApiError::internal(e.to_string()))?;
    let stored = registry
        .get(info, Some("kube-system"), &format!("bootstrap-token-{id}"))
        .await
        .map_err(|_| ApiError::unauthorized())?;
    let refuse = |why: &str| {
        tracing::debug!(token_id = id, reason = why, "bootstrap token refused");
        ApiError::unauthorized()
    };
    if stored.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err(refuse(
            "the Secret is not of type bootstrap.kubernetes.io/token",
        ));
    }
    if crate::objects::is_deleting(&stored) {
        return Err(refuse("the Secret is being deleted"));
    }
    let data = |key: &str| -> Option<String> {
        let encoded = stored.pointer(&format!("/data/{key}"))?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(bytes).ok()
    };
    if data("token-id").as_deref() != Some(id) {
        return Err(refuse("token-id does not match the Secret's name"));
    }
    let stored_secret = data("token-secret").unwrap_or_default();
    if !constant_time_eq(stored_secret.as_bytes(), secret.as_bytes()) {
        return Err(refuse("the token secret does not match"));
    }
    if data("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(refuse("the token is not for authentication"));
    }
    if let Some(expiration) = data("expiration") {
        let expires = chrono::DateTime::parse_from_rfc3339(expiration.trim())
            .map_err(|_| refuse("expiration is not an RFC 3339 time"))?;
        if expires <= chrono::Utc::now() {
            return Err(refuse("the token has expired"));
        }
    }
    let mut groups = vec![GROUP.to_string()];
    for g in data("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        // kube refuses the token when an extra group is not a bootstrappers' one
        if !valid_extra_group(g) {
            return Err(refuse(
                "auth-extra-groups names a group outside system:bootstrappers:",
            ));
        }
        if !groups.iter().any(|have| have == g) {
            groups.push(g.to_string());
        }
    }
    groups.push("system:authenticated".to_string());
    Ok((format!("system:bootstrap:{id}"), groups))
}

/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`, kube's rule for extra groups.
fn valid_extra_group(g: &str) -> bool {
    let Some(rest) = g.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_form_is_six_dot_sixteen_lowercase_alphanumerics() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse("abcde.0123456789abcdef"), None);
        assert_eq!(parse("abcdef.0123456789abcde"), None);
        assert_eq!(parse("abcdef0123456789abcdef"), None);
    }

    #[test]
    fn extra_groups_stay_under_system_bootstrappers() {
        assert!(valid_extra_group(
            "system:bootstrappers:kubeadm:default-node-token"
        ));
        assert!(!valid_extra_group("system:masters"));
        assert!(!valid_extra_group("system:bootstrappers:"));
        assert!(!valid_extra_group("system:bootstrappers:x-"));
    }
}
