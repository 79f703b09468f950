//! Join tokens: `K10<sha256 hex>::<id>.<secret>` (k3s's form) names the
//! cluster CA by hash and carries a bootstrap token; a bare `<id>.<secret>`
//! needs the hash beside it (`--ca-cert-hash sha256:<hex>`, kubeadm's
//! form). The hash is SHA-256 of the CA certificate's DER; kubeadm's hash of
//! the certificate's public key (SubjectPublicKeyInfo) is accepted too.

/// A parsed join token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The CA's SHA-256, lowercase hex.
    pub ca_hash: String,
    /// The bootstrap token, `id.secret`.
    pub bootstrap: String,
}

impl JoinToken {
    /// The token id (the Secret is `kube-system/bootstrap-token-ID`).
    pub fn id(&self) -> &str {
        self.bootstrap.split('.').next().unwrap_or_default()
    }
}

const PREFIX: &str = "K10";

/// Whether `s` is a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
pub fn is_bootstrap_token(s: &str) -> bool {
    let ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    s.split_once('.')
        .is_some_and(|(id, secret)| ok(id, 6) && ok(secret, 16))
}

fn hex_hash(s: &str, what: &str) -> Result<String, String> {
    let h = s.trim().to_ascii_lowercase();
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(h)
    } else {
        Err(format!(
            "{what} {s:?} is not a SHA-256 (64 hex digits); `korral token create --bootstrap` prints a whole join token"
        ))
    }
}

/// Parses `--token` (and `--ca-cert-hash`, `sha256:<hex>`).
pub fn parse(token: &str, ca_cert_hash: Option<&str>) -> Result<JoinToken, String> {
    let token = token.trim();
    let flag_hash = ca_cert_hash
        .map(|h| {
            let hex = h
                .strip_prefix("sha256:")
                .ok_or_else(|| format!("--ca-cert-hash {h:?} must be of the form sha256:<hex>"))?;
            hex_hash(hex, "--ca-cert-hash")
        })
        .transpose()?;
    let (ca_hash, bootstrap) = match token.strip_prefix(PREFIX).and_then(|r| r.split_once("::")) {
        Some((hash, creds)) => {
            let hash = hex_hash(hash, "the token's CA hash")?;
            if let Some(flag) = &flag_hash
                && *flag != hash
            {
                return Err(format!(
                    "--ca-cert-hash sha256:{flag} differs from the hash in the token, sha256:{hash}"
                ));
            }
            (hash, creds.to_string())
        }
        None => match flag_hash {
            Some(hash) => (hash, token.to_string()),
            None => {
                return Err(
                    "the token names no CA hash, so the server's certificate could not be verified \
                     (anyone on the network could pose as the server); pass the full join token \
                     (K10<hash>::<id>.<secret>, from `korral token create --bootstrap`) or add \
                     --ca-cert-hash sha256:<hex>"
                        .to_string(),
                );
            }
        },
    };
    if !is_bootstrap_token(&bootstrap) {
        return Err(format!(
            "{:?} is not a bootstrap token (<6 of a-z0-9>.<16 of a-z0-9>)",
            redact(&bootstrap)
        ));
    }
    Ok(JoinToken { ca_hash, bootstrap })
}

/// The token with its secret replaced, for messages.
pub fn redact(bootstrap: &str) -> String {
    match bootstrap.split_once('.') {
        Some((id, _)) => format!("{id}.<secret>"),
        None => "<token>".to_string(),
    }
}

/// The full join token for a CA (PEM) and a bootstrap token.
pub fn format(ca_pem: &str, bootstrap: &str) -> Result<String, String> {
    Ok(format!("{PREFIX}{}::{bootstrap}", ca_hashes(ca_pem)?.0))
}

/// The SHA-256 (hex) of the first certificate in `pem`: of its DER, and of
/// its SubjectPublicKeyInfo (kubeadm's `--discovery-token-ca-cert-hash`).
pub fn ca_hashes(pem: &str) -> Result<(String, String), String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| format!("the CA is not a PEM certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&block.contents)
        .map_err(|e| format!("the CA certificate does not parse: {e}"))?;
    let hex = |b: &[u8]| {
        ring::digest::digest(&ring::digest::SHA256, b)
            .as_ref()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    Ok((
        hex(&block.contents),
        hex(cert.tbs_certificate.subject_pki.raw),
    ))
}

/// Checks a CA (PEM) against the token's hash: an error naming both hashes.
pub fn verify_ca(ca_pem: &str, expected: &str) -> Result<(), String> {
    let (der, spki) = ca_hashes(ca_pem)?;
    if der == expected || spki == expected {
        Ok(())
    } else {
        Err(format!(
            "the server's CA certificate has hash sha256:{der}, but the token expects sha256:{expected}: \
             refusing to trust it (wrong server, or a token of another cluster)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "abcdef.0123456789abcdef";

    #[test]
    fn the_k3s_form_carries_hash_and_token() {
        let t = parse(&format!("K10{HASH}::{TOKEN}"), None).expect("parse");
        assert_eq!(t.ca_hash, HASH);
        assert_eq!(t.bootstrap, TOKEN);
        assert_eq!(t.id(), "abcdef");
        // an agreeing flag is fine, a differing one is not
        assert!(
            parse(
                &format!("K10{HASH}::{TOKEN}"),
                Some(&format!("sha256:{HASH}"))
            )
            .is_ok()
        );
        let other = "f".repeat(64);
        let e = parse(
            &format!("K10{HASH}::{TOKEN}"),
            Some(&format!("sha256:{other}")),
        )
        .expect_err("differs");
        assert!(e.contains(&other) && e.contains(HASH), "{e}");
    }

    #[test]
    fn a_bare_token_needs_the_hash_flag() {
        let e = parse(TOKEN, None).expect_err("no hash");
        assert!(e.contains("--ca-cert-hash"), "{e}");
        let t = parse(TOKEN, Some(&format!("sha256:{}", HASH.to_uppercase()))).expect("parse");
        assert_eq!(t.ca_hash, HASH);
        assert!(parse(TOKEN, Some(HASH)).is_err(), "no sha256: prefix");
    }

    #[test]
    fn malformed_tokens_are_refused_without_echoing_secrets() {
        assert!(parse(&format!("K10{}::{TOKEN}", &HASH[1..]), None).is_err());
        let e = parse(&format!("K10{HASH}::abcdef.TOPSECRETTOPSECRE"), None).expect_err("upper");
        assert!(!e.contains("TOPSECRET"), "{e}");
        assert!(parse(&format!("K10{HASH}::abcdef"), None).is_err());
    }

    #[test]
    fn the_ca_is_checked_by_certificate_or_key_hash() {
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertificateParams::default()
            .self_signed(&key)
            .expect("ca")
            .pem();
        let (der, spki) = ca_hashes(&ca).expect("hash");
        assert_ne!(der, spki);
        assert!(verify_ca(&ca, &der).is_ok());
        assert!(verify_ca(&ca, &spki).is_ok());
        let e = verify_ca(&ca, HASH).expect_err("wrong");
        assert!(e.contains(&der) && e.contains(HASH), "{e}");
        let full = format(&ca, TOKEN).expect("format");
        assert_eq!(parse(&full, None).expect("parse").ca_hash, der);
    }
}
