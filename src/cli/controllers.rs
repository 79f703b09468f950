//! `korral controllers`: the reconcilers as their own process (leader-elected,
//! so several can run against one cluster), and the in-process start used by
//! `korral server` and `korral up`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use reconcilers::controllers::{self, ControllerOptions};
use reconcilers::runtime::{Client, ControllerMetrics, Timing};
use tokio::sync::watch;

use crate::cli::output;

/// Arguments of `korral controllers`.
#[derive(clap::Args)]
pub struct Args {
    /// The kubeconfig to use (default: $KUBECONFIG, then ./.korral/kubeconfig.yaml).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Which controllers: all, none, or a comma-separated list (`-NAME` removes one).
    #[arg(long, default_value = "all")]
    controllers: String,
    /// This process's identity in leader election (default: hostname and pid).
    #[arg(long)]
    identity: Option<String>,
    /// Serve Prometheus metrics here.
    #[arg(long, default_value = "127.0.0.1:10257")]
    metrics_addr: SocketAddr,
    /// How long a leader's lease is valid without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    leader_elect_lease_duration: Duration,
    /// How long the leader tries to renew before giving up leadership.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    leader_elect_renew_deadline: Duration,
    /// How often candidates retry and the leader renews.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    leader_elect_retry_period: Duration,
    #[command(flatten)]
    tuning: Tuning,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    schemas::duration::parse_duration(s)
}

/// Timing flags of the controllers (as kube-controller-manager's).
#[derive(clap::Args, Clone, Debug)]
pub struct Tuning {
    /// How long a node may go without heartbeats before it is marked NotReady (Unknown) and tainted unreachable.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// How long pods without a toleration for the not-ready/unreachable taints stay on such a node (pods with one use its tolerationSeconds).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub pod_eviction_timeout: Duration,
    /// How often each HorizontalPodAutoscaler is evaluated.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// The ratio of usage to target within which an autoscaler does not scale.
    #[arg(long, default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// The down-scale stabilisation window of autoscalers whose behavior sets none.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// How long after a pod starts its CPU samples count only once it has been ready for a whole window.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// How long after start a pod's readiness changes are taken as its initial readiness.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_initial_readiness_delay: Duration,
    /// The CA certificate (PEM) the csrsigning controller signs client certificates with
    /// (default for `korral server`: its own, DATA_DIR/pki/ca.crt).
    #[arg(long, value_name = "FILE", requires = "cluster_signing_key_file")]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// The CA's private key (PEM) (default for `korral server`: DATA_DIR/pki/ca.key).
    #[arg(long, value_name = "FILE", requires = "cluster_signing_cert_file")]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// The longest life of a signed certificate (a request's expirationSeconds may only
    /// shorten it); at least 30s.
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    pub cluster_signing_duration: Duration,
}

/// The shortest `--cluster-signing-duration` korral accepts (kube's
/// `expirationSeconds` minimum is 10 minutes; tests of rotation need less).
const MIN_SIGNING_DURATION: Duration = Duration::from_secs(30);

/// Reads the csrsigning controller's CA from explicit files, else from the
/// server's PKI directory `default_pki` (`ca.crt`, `ca.key`) when given.
pub fn signing_ca(
    cert: Option<&Path>,
    key: Option<&Path>,
    default_pki: Option<&Path>,
) -> Result<Option<Arc<controllers::options::SigningCa>>, String> {
    let (cert, key) = match (cert, key, default_pki) {
        (Some(c), Some(k), _) => (c.to_path_buf(), k.to_path_buf()),
        (_, _, Some(dir)) => (dir.join("ca.crt"), dir.join("ca.key")),
        _ => return Ok(None),
    };
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| format!("--cluster-signing-*-file {}: {e}", p.display()))
    };
    Ok(Some(Arc::new(controllers::options::SigningCa {
        cert_pem: read(&cert)?,
        key_pem: read(&key)?,
    })))
}

impl Tuning {
    /// The controller options these flags describe; the csrsigning
    /// controller's CA from the flags or, without them, from `default_pki`.
    pub fn options(&self, default_pki: Option<&Path>) -> Result<ControllerOptions, String> {
        let cluster_signing = signing_ca(
            self.cluster_signing_cert_file.as_deref(),
            self.cluster_signing_key_file.as_deref(),
            default_pki,
        )?;
        if self.cluster_signing_duration < MIN_SIGNING_DURATION {
            tracing::warn!(
                requested = ?self.cluster_signing_duration,
                "--cluster-signing-duration raised to the minimum, {MIN_SIGNING_DURATION:?}"
            );
        }
        Ok(ControllerOptions {
            cluster_signing,
            cluster_signing_duration: self.cluster_signing_duration.max(MIN_SIGNING_DURATION),
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_monitor_period: self.node_monitor_period,
            pod_eviction_timeout: self.pod_eviction_timeout,
            hpa_sync_period: self.horizontal_pod_autoscaler_sync_period,
            hpa_tolerance: self.horizontal_pod_autoscaler_tolerance,
            hpa_downscale_stabilization: self.horizontal_pod_autoscaler_downscale_stabilization,
            hpa_cpu_initialization_period: self.horizontal_pod_autoscaler_cpu_initialization_period,
            hpa_initial_readiness_delay: self.horizontal_pod_autoscaler_initial_readiness_delay,
            ..ControllerOptions::default()
        })
    }
}

/// The default leader-election identity.
pub fn default_identity() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    format!("{}_{}", host.trim(), std::process::id())
}

/// Starts the selected controllers in this process, on a runtime of their
/// own (as kube-controller-manager is a process of its own: the operating
/// system shares the cores between them and the API server's request
/// handlers, so a busy server does not starve the scheduler's loop, nor the
/// loop the server); returns a sender that stops them.
pub fn start_in_process(
    kubeconfig: &Path,
    spec: &str,
    identity: String,
    options: ControllerOptions,
) -> Result<(watch::Sender<bool>, tokio::task::JoinHandle<()>), String> {
    let enabled = controllers::select(spec)?;
    let client = Client::from_kubeconfig(Some(kubeconfig), "korral-controllers")
        .map_err(|e| e.to_string())?;
    let (tx, rx) = watch::channel(false);
    let metrics = ControllerMetrics::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_name("korral-controllers")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the controllers' runtime: {e}"))?;
    let handle = tokio::task::spawn_blocking(move || {
        runtime.block_on(controllers::run_elected_with(
            client,
            enabled,
            identity,
            Timing::default(),
            metrics,
            rx,
            options,
        ));
    });
    Ok((tx, handle))
}

async fn serve_metrics(addr: SocketAddr, metrics: Arc<ControllerMetrics>) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { m.render() }
        }),
    );
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            if let Err(e) = axum::serve(l, app).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        }
        Err(e) => tracing::error!(%addr, error = %e, "cannot serve metrics"),
    }
}

/// Runs the controllers until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> ExitCode {
    let enabled = match controllers::select(&args.controllers) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("korral controllers: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("korral controllers: cannot start the async runtime: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    runtime.block_on(async move {
        let client = match Client::from_kubeconfig(args.kubeconfig.as_deref(), "korral-controllers")
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("korral controllers: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        let metrics = ControllerMetrics::new();
        tokio::spawn(serve_metrics(args.metrics_addr, metrics.clone()));
        let (tx, rx) = watch::channel(false);
        let identity = args.identity.unwrap_or_else(default_identity);
        eprintln!(
            "korral controllers ({identity}): {}",
            if enabled.is_empty() {
                "none".to_string()
            } else {
                enabled.join(", ")
            }
        );
        let timing = Timing {
            lease_duration: args.leader_elect_lease_duration,
            renew_deadline: args.leader_elect_renew_deadline,
            retry_period: args.leader_elect_retry_period,
        };
        let options = match args.tuning.options(None) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("korral controllers: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        let run = tokio::spawn(controllers::run_elected_with(
            client, enabled, identity, timing, metrics, rx, options,
        ));
        crate::cli::server::shutdown_signal().await;
        let _ = tx.send(true);
        let _ = run.await;
        ExitCode::SUCCESS
    })
}
