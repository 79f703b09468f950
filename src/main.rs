//! The `korral` binary: command-line wiring only; the work lives in the crates
//! and the per-command glue in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// korral: Kubernetes' architecture in one binary.
///
/// An API server over a real store, independent reconcilers, node daemons
/// that run real containers, and GitOps intake built in. `kubectl` works
/// against it.
#[derive(Parser)]
#[command(name = "korral", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info`, `korral=debug`.
    #[arg(long, global = true, env = "KORRAL_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate manifests (files or folders) as the API server would, offline (custom resources against CRDs from the input, --crds or a cluster).
    ///
    /// Exit status: 0 all valid, 1 something invalid, 2 usage or I/O error.
    Validate(cli::validate::Args),
    /// Run the control plane: the API server over the embedded store or etcd.
    ///
    /// Writes DIR/kubeconfig.yaml (admin) for kubectl.
    Server(cli::server::Args),
    /// Run the reconcilers as a separate process (leader-elected).
    Controllers(cli::controllers::Args),
    /// Everything in one process: server, controllers and a source for PATH (default fixtures/demo).
    Up(cli::up::Args),
    /// Sync a GitSource now (creating or updating it with --url/--path).
    ///
    /// Exit status: 0 synced, 1 invalid manifests (nothing applied), 2 other errors.
    Sync(cli::sync::Args),
    /// List GitSources with their status.
    ///
    /// Exit status: 0 all ready, 1 some not ready, 2 error.
    Sources(cli::sources::Args),
    /// Show what syncing manifests at PATH would change, before committing them.
    ///
    /// Exit status: 0 no change, 1 changes, 2 error.
    Diff(cli::diff::Args),
    /// Compare a GitSource with the cluster: drifted fields and who changed them.
    ///
    /// Exit status: 0 no drift, 1 drift, 2 error.
    Drift(cli::drift::Args),
    /// Run a node daemon: register the Node, heartbeat, run the pods bound to it.
    ///
    /// `--simulate N` runs N simulated nodes in one process.
    Node(cli::node::Args),
    /// The process runtime's per-container shim (started by `korral node`).
    #[command(hide = true)]
    NodeShim(cli::node::ShimArgs),
    /// Images for the containerd runtime: import archives, build a busybox image.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage identities in a server's token file, and the cluster's bootstrap (join) tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Cluster snapshots: save one on a running server, list, delete and prune them, restore one
    /// into a new data directory.
    ///
    /// save, ls, delete and prune ask the server named by the kubeconfig (its user must be in
    /// system:masters); the server writes the snapshot of its store (the embedded store's data at
    /// one moment, or etcd's own snapshot) into its snapshot directory (`DATA_DIR/snapshots`)
    /// while it keeps serving. Servers also take scheduled snapshots (`korral server
    /// --snapshot-schedule-cron`, `--snapshot-retention`). restore works offline on a file.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Take a snapshot now, on the server (and optionally download it).
    Save(cli::snapshot::SaveArgs),
    /// List the server's snapshots: NAME, SIZE, CREATED, REVISION, STORE.
    #[command(visible_alias = "list")]
    Ls(cli::snapshot::ListArgs),
    /// Delete snapshots from the server's snapshot directory.
    Delete(cli::snapshot::DeleteArgs),
    /// Delete all but the newest N scheduled snapshots (or of those named PREFIX…).
    Prune(cli::snapshot::PruneArgs),
    /// Restore a snapshot file into a new, empty data directory (offline).
    ///
    /// The file's SHA-256 is checked first: a truncated or corrupt file is refused, naming it,
    /// and nothing is written. An embedded-store snapshot becomes DIR/store.redb; an etcd
    /// snapshot is restored with etcd's own tool (`etcdutl snapshot restore`, or `etcdctl
    /// snapshot restore` where there is no etcdutl, as with Debian's etcd 3.4) into the member
    /// data directory DIR/etcd. The printed commands start the restored cluster.
    Restore(cli::snapshot::restore::RestoreArgs),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Load an OCI or docker-archive tarball into containerd (no registry needed).
    Import(cli::image::ImportArgs),
    /// Write an OCI archive of a tiny busybox image built from busybox-static.
    BuildBusybox(cli::image::BuildBusyboxArgs),
    /// Push an image (from containerd or an archive) to a registry.
    Push(cli::image::PushArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Add an identity (or reuse it) and print its token or write a kubeconfig.
    Create(cli::token::CreateArgs),
    /// List the cluster's bootstrap tokens as `kubeadm token list` does (secrets not shown).
    #[command(visible_alias = "ls")]
    List(cli::token_list::ListArgs),
    /// Delete bootstrap tokens: nodes can no longer join with them.
    Delete(cli::token_list::DeleteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::logging::init(&cli.log);
    match cli.command {
        Command::Validate(args) => cli::validate::run(args),
        Command::Server(args) => cli::server::run(args),
        Command::Controllers(args) => cli::controllers::run(args),
        Command::Up(args) => cli::up::run(args),
        Command::Sync(args) => cli::sync::run(args),
        Command::Sources(args) => cli::sources::run(args),
        Command::Diff(args) => cli::diff::run(args),
        Command::Drift(args) => cli::drift::run(args),
        Command::Token(TokenCommand::Create(args)) => cli::token::create(args),
        Command::Token(TokenCommand::List(args)) => cli::token_list::list(args),
        Command::Token(TokenCommand::Delete(args)) => cli::token_list::delete(args),
        Command::Snapshot(SnapshotCommand::Save(args)) => cli::snapshot::save(args),
        Command::Snapshot(SnapshotCommand::Ls(args)) => cli::snapshot::list(args),
        Command::Snapshot(SnapshotCommand::Delete(args)) => cli::snapshot::delete(args),
        Command::Snapshot(SnapshotCommand::Prune(args)) => cli::snapshot::prune(args),
        Command::Snapshot(SnapshotCommand::Restore(args)) => cli::snapshot::restore::run(args),
        Command::Node(args) => cli::node::run(args),
        Command::Image(ImageCommand::Import(args)) => cli::image::import(args),
        Command::Image(ImageCommand::BuildBusybox(args)) => cli::image::build_busybox(args),
        Command::Image(ImageCommand::Push(args)) => cli::image::push(args),
        Command::NodeShim(args) => cli::node::shim(args),
    }
}
