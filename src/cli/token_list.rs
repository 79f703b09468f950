//! `korral token list` and `korral token delete`: the cluster's bootstrap
//! tokens (Secrets `kube-system/bootstrap-token-ID` of type
//! `bootstrap.kubernetes.io/token`), shown as `kubeadm token list` shows
//! them and deleted by id, through the API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::Secret;
use reconcilers::runtime::{DeleteParams, ListParams};
use serde_json::{Value, json};

use crate::cli::output::{self, ListFormat};

/// Arguments of `korral token list`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ListFormat::Table)]
    output: ListFormat,
    /// The kubeconfig to use (default: $KUBECONFIG, then ./.korral/kubeconfig.yaml).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// Arguments of `korral token delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// Tokens to delete: a token id (`abcdef`), a token (`abcdef.0123456789abcdef`) or a join
    /// token (`K10<hash>::abcdef.0123456789abcdef`).
    #[arg(required = true, value_name = "TOKEN_ID")]
    tokens: Vec<String>,
    /// The kubeconfig to use (default: $KUBECONFIG, then ./.korral/kubeconfig.yaml).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// One bootstrap token, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token id (the public half).
    pub id: String,
    /// When it expires (`None`: never).
    pub expires: Option<chrono::DateTime<chrono::Utc>>,
    /// `authentication`, `signing`, ... (the Secret's `usage-bootstrap-*: "true"` keys).
    pub usages: Vec<String>,
    /// Its description.
    pub description: String,
    /// `auth-extra-groups`.
    pub groups: Vec<String>,
}

/// Reads a bootstrap-token Secret's data (already decoded); `None` when it is not one.
pub fn token_info(name: &str, data: &BTreeMap<String, String>) -> Option<TokenInfo> {
    let id = name.strip_prefix("bootstrap-token-")?;
    let expires = data
        .get("expiration")
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(e.trim()).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let usages = data
        .iter()
        .filter(|(_, v)| v.as_str() == "true")
        .filter_map(|(k, _)| k.strip_prefix("usage-bootstrap-").map(str::to_string))
        .collect();
    let groups = data
        .get("auth-extra-groups")
        .map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(TokenInfo {
        id: data
            .get("token-id")
            .cloned()
            .unwrap_or_else(|| id.to_string()),
        expires,
        usages,
        description: data.get("description").cloned().unwrap_or_default(),
        groups,
    })
}

/// Go's `duration.ShortHumanDuration`, as kubeadm prints a token's TTL.
pub fn short_human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs < -1 {
        "<invalid>".into()
    } else if secs < 0 {
        "0s".into()
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 60 * 60 {
        format!("{}m", secs / 60)
    } else if secs < 48 * 3600 {
        format!("{}h", secs / 3600)
    } else if secs < 365 * 86400 {
        format!("{}d", secs / 86400)
    } else {
        format!("{}y", secs / (365 * 86400))
    }
}

/// The token id in a token id, a token or a join token.
pub fn token_id(arg: &str) -> Result<String, String> {
    let token = arg.rsplit_once("::").map_or(arg, |(_, t)| t);
    let id = token.split_once('.').map_or(token, |(id, _)| id);
    if id.len() == 6
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        Ok(id.to_string())
    } else {
        Err(format!(
            "{arg:?} is not a bootstrap token id ([a-z0-9]{{6}}), token (ID.SECRET) or join token (K10…::ID.SECRET)"
        ))
    }
}

fn table(tokens: &[TokenInfo], now: chrono::DateTime<chrono::Utc>) -> String {
    let none = |s: String| if s.is_empty() { "<none>".into() } else { s };
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            let (ttl, expires) = match t.expires {
                Some(e) => (
                    short_human_duration(e - now),
                    e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
                None => ("<forever>".into(), "<never>".into()),
            };
            vec![
                t.id.clone(),
                ttl,
                expires,
                none(t.usages.join(",")),
                none(t.description.clone()),
                none(t.groups.join(",")),
            ]
        })
        .collect();
    output::table(
        &[
            "TOKEN ID",
            "TTL",
            "EXPIRES",
            "USAGES",
            "DESCRIPTION",
            "EXTRA GROUPS",
        ],
        &rows,
    )
}

fn as_json(tokens: &[TokenInfo], now: chrono::DateTime<chrono::Utc>) -> Value {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "tokenID": t.id,
                "ttl": t.expires.map(|e| short_human_duration(e - now)),
                "expires": t.expires.map(|e| e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "usages": t.usages,
                "description": t.description,
                "groups": t.groups,
            })
        })
        .collect();
    json!({"apiVersion": "korral.dev/v1", "kind": "BootstrapTokenList", "items": items})
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    crate::cli::sources::runtime("token")
}

/// Runs `korral token list`.
pub fn list(args: ListArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let client = match crate::cli::sources::client("token list", args.kubeconfig.as_deref()) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let secrets = rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        client
            .api::<Secret>(Some("kube-system"))
            .list_all(&ListParams::default())
            .await
    });
    let secrets = match secrets {
        Ok(list) => list.items,
        Err(e) => {
            eprintln!("korral token list: cannot list Secrets in kube-system: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    let mut tokens: Vec<TokenInfo> = secrets
        .iter()
        .filter(|s| s.type_.as_deref() == Some(apiserver::bootstrap_tokens::SECRET_TYPE))
        .filter_map(|s| {
            let name = s.metadata.name.as_deref()?;
            let data: BTreeMap<String, String> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            token_info(name, &data)
        })
        .collect();
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    let now = chrono::Utc::now();
    match args.output {
        ListFormat::Table => {
            print!("{}", table(&tokens, now));
            ExitCode::SUCCESS
        }
        format => output::print_structured(&as_json(&tokens, now), format),
    }
}

/// Runs `korral token delete`.
pub fn delete(args: DeleteArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let client = match crate::cli::sources::client("token delete", args.kubeconfig.as_deref()) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let api = client.api::<Secret>(Some("kube-system"));
    let mut code = ExitCode::SUCCESS;
    for arg in &args.tokens {
        let id = match token_id(arg) {
            Ok(id) => id,
            Err(e) => {
                eprintln!("korral token delete: {e}");
                code = ExitCode::from(output::ERROR);
                continue;
            }
        };
        let name = format!("bootstrap-token-{id}");
        let result = rt.block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            api.delete(&name, &DeleteParams::default()).await
        });
        match result {
            Ok(()) => println!("bootstrap token {id:?} deleted"),
            Err(e) if e.is_not_found() => {
                eprintln!("korral token delete: bootstrap token {id:?} not found");
                code = ExitCode::from(output::ERROR);
            }
            Err(e) => {
                eprintln!("korral token delete: cannot delete Secret kube-system/{name}: {e}");
                code = ExitCode::from(output::ERROR);
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        schemas::time::parse(s).expect("time")
    }

    #[test]
    fn ids_come_from_ids_tokens_and_join_tokens() {
        assert_eq!(token_id("abcdef").as_deref(), Ok("abcdef"));
        assert_eq!(token_id("abcdef.0123456789abcdef").as_deref(), Ok("abcdef"));
        assert_eq!(
            token_id("K10deadbeef::abcdef.0123456789abcdef").as_deref(),
            Ok("abcdef")
        );
        assert!(token_id("ABCDEF").is_err());
        assert!(token_id("abc").is_err());
        assert!(token_id("bootstrap-token-abcdef").is_err());
    }

    #[test]
    fn ttls_read_like_kubeadm() {
        let d = chrono::Duration::seconds;
        assert_eq!(short_human_duration(d(30)), "30s");
        assert_eq!(short_human_duration(d(23 * 3600 + 59 * 60)), "23h");
        assert_eq!(short_human_duration(d(3 * 86400)), "3d");
        assert_eq!(short_human_duration(d(-10)), "<invalid>");
    }

    #[test]
    fn a_token_secret_lists_as_kubeadm_shows_it() {
        let data: BTreeMap<String, String> = [
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
            ("usage-bootstrap-signing", "true"),
            ("usage-bootstrap-other", "false"),
            ("expiration", "2026-12-09T00:00:00Z"),
            ("description", "for worker-1"),
            (
                "auth-extra-groups",
                "system:bootstrappers:korral:default-node-token",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let info = token_info("bootstrap-token-abcdef", &data).expect("a token");
        assert_eq!(info.usages, ["authentication", "signing"]);
        let t = table(std::slice::from_ref(&info), at("2026-12-08T00:00:00Z"));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("TOKEN ID   TTL   EXPIRES"), "{t}");
        assert!(lines[1].starts_with("abcdef     24h   2026-12-09T00:00:00Z   authentication,signing   for worker-1   system:bootstrappers:korral:default-node-token"), "{t}");
        // the secret half is never printed
        assert!(!t.contains("0123456789abcdef"), "{t}");
        let j = as_json(&[info], at("2026-12-08T00:00:00Z"));
        assert_eq!(j["items"][0]["tokenID"], "abcdef");
        assert_eq!(j["items"][0]["ttl"], "24h");
        let never = token_info("bootstrap-token-zzzzzz", &BTreeMap::new()).expect("a token");
        assert!(
            table(&[never], at("2026-12-08T00:00:00Z")).contains("<forever>   <never>   <none>")
        );
        assert!(token_info("default-token-x", &data).is_none());
    }
}
