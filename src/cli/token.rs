//! `korral token create`: add an identity to a server's token file and write
//! a kubeconfig for it (e.g. for a node daemon: `--role node:worker-1`), or
//! (`--bootstrap`) make a bootstrap token through the API and print the join
//! token nodes join with (`korral node --server URL --token T`).

use std::path::PathBuf;
use std::process::ExitCode;

use apiserver::auth::{Role, TokenFile};

use crate::cli::output;

/// Arguments of `korral token create`.
#[derive(clap::Args)]
pub struct CreateArgs {
    /// The server's data directory.
    #[arg(long, default_value = ".korral", env = "KORRAL_DATA_DIR")]
    data_dir: PathBuf,
    /// The role: admin, viewer, node:NAME, controller or intake.
    #[arg(
        long,
        required_unless_present = "bootstrap",
        conflicts_with = "bootstrap"
    )]
    role: Option<String>,
    /// Make a bootstrap token (the Secret kube-system/bootstrap-token-ID, through the API with the
    /// data directory's admin kubeconfig) and print the join token: the CA's hash and the token.
    #[arg(long, conflicts_with_all = ["name", "kubeconfig_out"])]
    bootstrap: bool,
    /// How long the bootstrap token is valid (0: forever).
    #[arg(long, default_value = "24h", value_parser = crate::cli::node::parse_duration, requires = "bootstrap")]
    ttl: std::time::Duration,
    /// The bootstrap token's description.
    #[arg(long, requires = "bootstrap")]
    description: Option<String>,
    /// The identity's name (default: `system:node:NAME` for nodes, else the role).
    #[arg(long)]
    name: Option<String>,
    /// Write a kubeconfig for the identity here (default: print the token).
    #[arg(long, value_name = "FILE")]
    kubeconfig_out: Option<PathBuf>,
}

/// Runs `korral token create`.
pub fn create(args: CreateArgs) -> ExitCode {
    if args.bootstrap {
        return match create_bootstrap(&args) {
            Ok(join) => {
                println!("{join}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("korral token create --bootstrap: {e}");
                ExitCode::from(output::ERROR)
            }
        };
    }
    let role_arg = args.role.clone().unwrap_or_default();
    let Some(role) = Role::parse(&role_arg) else {
        eprintln!(
            "korral token create: unknown role {role_arg:?}; use admin, viewer, node:NAME, controller or intake"
        );
        return ExitCode::from(output::ERROR);
    };
    let name = args.name.clone().unwrap_or_else(|| match &role {
        Role::Node(n) => format!("system:node:{n}"),
        other => other.to_string(),
    });
    let result = (|| -> Result<(), String> {
        let tokens = TokenFile::load_or_create(&args.data_dir).map_err(|e| e.to_string())?;
        let token = tokens.ensure(&name, &role).map_err(|e| e.to_string())?;
        match &args.kubeconfig_out {
            None => println!("{token}"),
            Some(out) => {
                let admin = admin_kubeconfig(&args.data_dir)?;
                let text = std::fs::read_to_string(&admin)
                    .map_err(|e| format!("{}: {e}", admin.display()))?;
                let server =
                    find_value(&text, "server:").ok_or("the admin kubeconfig names no server")?;
                let ca_path = args.data_dir.join("pki").join("ca.crt");
                let ca = std::fs::read_to_string(&ca_path)
                    .map_err(|e| format!("{}: {e}", ca_path.display()))?;
                apiserver::kubeconfig::write(out, &server, &ca, &name, &token)
                    .map_err(|e| e.to_string())?;
                println!("wrote {} for {name} ({role})", out.display());
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("korral token create: {e}");
            ExitCode::from(output::ERROR)
        }
    }
}

/// The admin kubeconfig `korral server` wrote into its data directory.
fn admin_kubeconfig(data_dir: &std::path::Path) -> Result<PathBuf, String> {
    let admin = data_dir.join("kubeconfig.yaml");
    if admin.exists() {
        Ok(admin)
    } else {
        Err(format!(
            "{}: no such file (start `korral server` with this --data-dir once first)",
            admin.display()
        ))
    }
}

/// Random lowercase alphanumerics, as bootstrap token ids and secrets are made of.
fn random_alphanumerics(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// The Secret kubeadm writes for a bootstrap token `id.secret`.
fn bootstrap_secret(
    id: &str,
    secret: &str,
    expires: Option<chrono::DateTime<chrono::Utc>>,
    description: &str,
) -> k8s_openapi::api::core::v1::Secret {
    let mut data = std::collections::BTreeMap::from([
        ("token-id".to_string(), id.to_string()),
        ("token-secret".to_string(), secret.to_string()),
        (
            "usage-bootstrap-authentication".to_string(),
            "true".to_string(),
        ),
        ("usage-bootstrap-signing".to_string(), "true".to_string()),
        (
            "auth-extra-groups".to_string(),
            apiserver::rbac::bootstrap::BOOTSTRAP_TOKEN_GROUP.to_string(),
        ),
        ("description".to_string(), description.to_string()),
    ]);
    if let Some(t) = expires {
        data.insert(
            "expiration".to_string(),
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        type_: Some(apiserver::bootstrap_tokens::SECRET_TYPE.into()),
        string_data: Some(data),
        ..Default::default()
    }
}

/// Writes a new bootstrap token's Secret through the API; returns the join token.
fn create_bootstrap(args: &CreateArgs) -> Result<String, String> {
    let admin = admin_kubeconfig(&args.data_dir)?;
    let client = reconcilers::runtime::Client::from_kubeconfig(Some(&admin), "korral-token")
        .map_err(|e| e.to_string())?;
    let ca = client
        .ca_pem()
        .ok_or_else(|| format!("{}: names no certificate-authority", admin.display()))?
        .to_string();
    let (id, secret) = (random_alphanumerics(6), random_alphanumerics(16));
    let bootstrap = format!("{id}.{secret}");
    let expires = (!args.ttl.is_zero())
        .then(|| chrono::Duration::from_std(args.ttl).ok())
        .flatten()
        .map(|ttl| chrono::Utc::now() + ttl);
    let description = args
        .description
        .clone()
        .unwrap_or_else(|| "made by korral token create --bootstrap".into());
    let object = bootstrap_secret(&id, &secret, expires, &description);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        client
            .api::<k8s_openapi::api::core::v1::Secret>(Some("kube-system"))
            .create(&object, &Default::default())
            .await
            .map_err(|e| format!("cannot create Secret kube-system/bootstrap-token-{id}: {e}"))
    })?;
    node::tls_bootstrap::token::format(&ca, &bootstrap)
}

fn find_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_tokens_are_of_the_bootstrap_form() {
        let token = format!("{}.{}", random_alphanumerics(6), random_alphanumerics(16));
        assert!(
            node::tls_bootstrap::token::is_bootstrap_token(&token),
            "{token}"
        );
        assert!(apiserver::bootstrap_tokens::parse(&token).is_some());
        let secret = bootstrap_secret("abcdef", "0123456789abcdef", None, "d");
        let data = secret.string_data.expect("data");
        assert_eq!(data["usage-bootstrap-authentication"], "true");
        assert!(!data.contains_key("expiration"));
    }
}
