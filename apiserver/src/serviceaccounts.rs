//! ServiceAccount tokens as kube-apiserver issues and checks them: ES256
//! JWTs signed with the cluster's ServiceAccount key (`pki/sa.key`, made on
//! first start), with Kubernetes' claims (`iss`, `sub`
//! `system:serviceaccount:NS:NAME`, `aud`, `exp`/`iat`/`nbf`, `jti`, and
//! `kubernetes.io` naming the namespace, the ServiceAccount and the pod,
//! Secret or Node the token is bound to). The TokenRequest subresource
//! issues them, bearer authentication and TokenReview check them.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::pki::{PkiError, write_private};

/// The issuer and default audience (kube-apiserver's default with kubeadm).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A token's shortest allowed life (TokenRequest validation).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

/// The life of a token when the request names none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// An object a token is bound to (it is valid only while that object exists).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: Ref,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    /// The Secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    /// The node the token is bound to (or the bound pod runs on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
}

/// A token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Issuer.
    pub iss: String,
    /// Token id.
    pub jti: String,
    /// Not before.
    pub nbf: i64,
    /// `system:serviceaccount:NS:NAME`.
    pub sub: String,
    /// Kubernetes' private claim.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

impl Claims {
    /// The user name the token authenticates as.
    pub fn username(&self) -> String {
        username(
            &self.kubernetes.namespace,
            &self.kubernetes.serviceaccount.name,
        )
    }

    /// The groups of a ServiceAccount user.
    pub fn groups(&self) -> Vec<String> {
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", self.kubernetes.namespace),
            "system:authenticated".into(),
        ]
    }
}

/// A ServiceAccount's user name.
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Signs and checks ServiceAccount tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
}

impl TokenIssuer {
    /// Loads `dir/sa.key` (and `sa.pub`), creating an ECDSA P-256 key pair
    /// when missing.
    pub fn load_or_create(dir: &Path) -> Result<TokenIssuer, PkiError> {
        let key_path = dir.join("sa.key");
        let pub_path = dir.join("sa.pub");
        let (key_pem, pub_pem) = match (
            std::fs::read_to_string(&key_path),
            std::fs::read_to_string(&pub_path),
        ) {
            (Ok(k), Ok(p)) => (k, p),
            _ => {
                let key = rcgen::KeyPair::generate()?;
                let (k, p) = (key.serialize_pem(), key.public_key_pem());
                write_private(&key_path, &k)?;
                write_private(&pub_path, &p)?;
                tracing::info!(path = %key_path.display(), "generated the ServiceAccount signing key");
                (k, p)
            }
        };
        let bad = |what: &str, e: jsonwebtoken::errors::Error| PkiError::Io {
            path: dir.join(what),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        };
        let encoding =
            EncodingKey::from_ec_pem(key_pem.as_bytes()).map_err(|e| bad("sa.key", e))?;
        let decoding =
            DecodingKey::from_ec_pem(pub_pem.as_bytes()).map_err(|e| bad("sa.pub", e))?;
        // kube's key id: the SHA-256 of the public key, base64url
        let digest = ring::digest::digest(&ring::digest::SHA256, pub_pem.as_bytes());
        let key_id = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            digest.as_ref(),
        );
        Ok(TokenIssuer {
            encoding,
            decoding,
            key_id,
        })
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// Checks a token's signature, issuer, time window and audience (one of
    /// `audiences` must be among its own); the caller checks that the
    /// objects it names still exist.
    pub fn verify(&self, token: &str, audiences: &[&str]) -> Result<Claims, String> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(audiences);
        v.validate_nbf = true;
        v.leeway = 60;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }
}

/// Whether a bearer token looks like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64, aud: &str) -> Claims {
        Claims {
            aud: vec![aud.into()],
            exp: now + 3600,
            iat: now,
            iss: ISSUER.into(),
            jti: "j".into(),
            nbf: now,
            sub: username("default", "ci"),
            kubernetes: KubernetesClaim {
                namespace: "default".into(),
                serviceaccount: Ref {
                    name: "ci".into(),
                    uid: "u1".into(),
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_other_audiences_keys_and_expiry() {
        let dir = tempfile::tempdir().expect("dir");
        let issuer = TokenIssuer::load_or_create(dir.path()).expect("issuer");
        let now = chrono::Utc::now().timestamp();
        let token = issuer.sign(&claims(now, ISSUER)).expect("sign");
        assert!(looks_like_jwt(&token));
        let back = issuer.verify(&token, &[ISSUER]).expect("verify");
        assert_eq!(back.username(), "system:serviceaccount:default:ci");
        assert!(issuer.verify(&token, &["vault"]).is_err());
        // the same key is read back after a restart
        let again = TokenIssuer::load_or_create(dir.path()).expect("reload");
        assert!(again.verify(&token, &[ISSUER]).is_ok());
        // another cluster's key does not verify it
        let other = tempfile::tempdir().expect("dir");
        let stranger = TokenIssuer::load_or_create(other.path()).expect("issuer");
        assert!(stranger.verify(&token, &[ISSUER]).is_err());
        let mut old = claims(now - 10_000, ISSUER);
        old.exp = now - 5000;
        let expired = issuer.sign(&old).expect("sign");
        assert!(issuer.verify(&expired, &[ISSUER]).is_err());
    }
}
