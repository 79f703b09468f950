//! `korral token create`: add an identity to a server's token file and write
//! a kubeconfig for it (e.g. for a node daemon: `--role node:worker-1`).

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
    #[arg(long)]
    role: String,
    /// The identity's name (default: `system:node:NAME` for nodes, else the role).
    #[arg(long)]
    name: Option<String>,
    /// Write a kubeconfig for the identity here (default: print the token).
    #[arg(long, value_name = "FILE")]
    kubeconfig_out: Option<PathBuf>,
}

/// Runs `korral token create`.
pub fn create(args: CreateArgs) -> ExitCode {
    let Some(role) = Role::parse(&args.role) else {
        eprintln!(
            "korral token create: unknown role {:?}; use admin, viewer, node:NAME, controller or intake",
            args.role
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
                let admin = args.data_dir.join("kubeconfig.yaml");
                let text = std::fs::read_to_string(&admin).map_err(|e| {
                    format!(
                        "{}: {e} (start `korral server` with this --data-dir once first)",
                        admin.display()
                    )
                })?;
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

fn find_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
        .filter(|v| !v.is_empty())
}
