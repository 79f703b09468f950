//! `korral snapshot restore FILE --data-dir DIR`: a snapshot into a fresh
//! data directory (offline; `apiserver::snapshots::restore` does the work),
//! then what to start on it.

use std::path::PathBuf;
use std::process::ExitCode;

use apiserver::snapshots::file::Kind;
use apiserver::snapshots::restore::{EtcdMember, Options, restore};

use crate::cli::output;

/// Arguments of `korral snapshot restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The snapshot file (from `korral snapshot save`, the server's snapshot directory, or
    /// `etcdctl snapshot save`).
    file: PathBuf,
    /// The new data directory: it must not exist or be empty. An embedded-store snapshot
    /// becomes DIR/store.redb (start `korral server --data-dir DIR`); an etcd snapshot
    /// becomes the etcd member data directory DIR/etcd (start etcd with `--data-dir DIR/etcd`
    /// and the member flags below, then `korral server --data-dir DIR --etcd-servers URL`).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The old cluster's data directory: copy its CA, keys and certificates (pki/) and token
    /// file (tokens.csv), so kubeconfigs, node certificates and ServiceAccount tokens issued
    /// before stay valid. Without it the restored server makes a new CA and new tokens.
    #[arg(long, value_name = "OLD_DATA_DIR")]
    pki_from: Option<PathBuf>,
    /// etcd snapshots: the restored member's name (etcd's --name).
    #[arg(long, default_value = "default", value_name = "NAME")]
    etcd_name: String,
    /// etcd snapshots: the restored member's peer URL (etcd's --initial-advertise-peer-urls).
    #[arg(long, default_value = "http://localhost:2380", value_name = "URL")]
    etcd_peer_url: String,
    /// etcd snapshots: the initial cluster (NAME=URL,...; default: this member alone).
    #[arg(long, value_name = "MEMBERS")]
    etcd_initial_cluster: Option<String>,
    /// etcd snapshots: the cluster token (etcd's --initial-cluster-token).
    #[arg(long, default_value = "etcd-cluster", value_name = "TOKEN")]
    etcd_initial_cluster_token: String,
}

/// Runs `korral snapshot restore`.
pub fn run(args: RestoreArgs) -> ExitCode {
    let options = Options {
        file: args.file.clone(),
        data_dir: args.data_dir.clone(),
        pki_from: args.pki_from.clone(),
        etcd: EtcdMember {
            name: args.etcd_name.clone(),
            peer_url: args.etcd_peer_url.clone(),
            initial_cluster: args.etcd_initial_cluster.clone(),
            cluster_token: args.etcd_initial_cluster_token.clone(),
        },
    };
    let started = std::time::Instant::now();
    let restored = match restore(&options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("korral snapshot restore: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    let dir = args.data_dir.display();
    match restored.kind {
        Kind::Embedded => {
            println!(
                "restored {} keys at revision {} into {} ({} ms)",
                restored.keys.unwrap_or(0),
                restored.revision.unwrap_or(0),
                restored.path.display(),
                started.elapsed().as_millis()
            );
            println!("start it with: korral server --data-dir {dir}");
        }
        Kind::Etcd => {
            let initial = args
                .etcd_initial_cluster
                .clone()
                .unwrap_or_else(|| format!("{}={}", args.etcd_name, args.etcd_peer_url));
            let what = match (restored.keys, restored.revision) {
                (Some(k), Some(r)) => format!("{k} etcd keys at revision {r}"),
                _ => "the etcd snapshot".to_string(),
            };
            println!(
                "restored {what} into the member data directory {} ({} ms)",
                restored.path.display(),
                started.elapsed().as_millis()
            );
            println!(
                "start etcd with: etcd --data-dir {} --name {} --initial-advertise-peer-urls {} --listen-peer-urls {} --initial-cluster {initial} --listen-client-urls URL --advertise-client-urls URL",
                restored.path.display(),
                args.etcd_name,
                args.etcd_peer_url,
                args.etcd_peer_url
            );
            println!("then: korral server --data-dir {dir} --etcd-servers URL");
        }
    }
    ExitCode::SUCCESS
}
