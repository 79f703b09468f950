//! `korral server`: the control plane (API server over the embedded store or
//! etcd); writes `DIR/kubeconfig.yaml` for kubectl.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use apiserver::server::{ServerConfig, start};
use apiserver::store::{EtcdAuth, EtcdOptions, EtcdTls};
use reconcilers::dns::DnsConfig;

use crate::cli::output;

/// Arguments of `korral server`.
#[derive(clap::Args)]
pub struct Args {
    /// Where the CA, certificates, tokens, kubeconfigs and the embedded store live.
    #[arg(long, default_value = ".korral", env = "KORRAL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// HTTPS address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// The IP published in the `kubernetes` Service's Endpoints, where pods
    /// reach the API server (it must be reachable from their network
    /// namespaces); default: the listen IP, or for 0.0.0.0 the address of
    /// the interface the default route leaves by, as kube-apiserver's.
    #[arg(long, value_name = "IP")]
    pub advertise_address: Option<IpAddr>,
    /// etcd client URLs (comma-separated); the embedded store is used when unset.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub etcd_servers: Vec<String>,
    /// Key prefix in etcd.
    #[arg(long, default_value = "/registry/")]
    pub etcd_prefix: String,
    /// CA certificate of etcd's server certificates.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// etcd user (with `--etcd-password` or `KORRAL_ETCD_PASSWORD`).
    #[arg(long)]
    pub etcd_user: Option<String>,
    /// etcd password.
    #[arg(long, env = "KORRAL_ETCD_PASSWORD", hide_env_values = true)]
    pub etcd_password: Option<String>,
    /// Also serve plain HTTP on this loopback port (tokens are still required).
    #[arg(long, value_name = "PORT")]
    pub insecure_port: Option<u16>,
    /// Controllers to run in this process: all, none, or a comma-separated list.
    #[arg(long, default_value = "all")]
    pub controllers: String,
    /// Extra names or IPs for the serving certificate (repeatable).
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_sans: Vec<String>,
    /// Serve watches with `sendInitialEvents` (kube-apiserver's WatchList
    /// feature gate, off by default as in Kubernetes 1.33); also turns a
    /// watch without a resourceVersion into one.
    #[arg(long)]
    pub watch_list: bool,
    /// Serve lists, `resourceVersion=0` gets and watches from memory (the
    /// watch cache, kube-apiserver's `--watch-cache`); `--watch-cache=false`
    /// reads the store for every request.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub watch_cache: bool,
    /// An audit.k8s.io/v1 Policy: each request's audit level (with --audit-log-path).
    #[arg(long, value_name = "FILE", requires = "audit_log_path")]
    pub audit_policy_file: Option<PathBuf>,
    /// Where audit events are appended as JSON lines (with --audit-policy-file).
    #[arg(long, value_name = "FILE", requires = "audit_policy_file")]
    pub audit_log_path: Option<PathBuf>,
    /// Admission plugins to turn off, comma-separated, by kube-apiserver's
    /// names (korral can turn off: ServiceAccount — which otherwise gives
    /// every new pod its ServiceAccount and the kube-api-access token volume).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
    /// Serve requests without credentials as `system:anonymous` (group
    /// `system:unauthenticated`), which the default RBAC lets read only
    /// /version and the health endpoints; `false` answers them 401.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
    #[command(flatten)]
    pub network: Network,
    #[command(flatten)]
    pub tuning: crate::cli::controllers::Tuning,
    /// Run the GitOps intake (the GitSource reconciler) in this process.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub intake: bool,
    /// Serve the Git push webhook (`POST /hooks/git`) on this address.
    #[arg(long, value_name = "ADDR")]
    pub intake_webhook_listen: Option<SocketAddr>,
    /// A file holding the webhook's secret (GitHub HMAC or GitLab token).
    #[arg(long, value_name = "FILE")]
    pub intake_webhook_secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub snapshots: Snapshots,
}

/// Scheduled snapshots (as k3s's `--etcd-snapshot-*` flags).
#[derive(clap::Args, Clone, Debug)]
pub struct Snapshots {
    /// When to take scheduled snapshots of the store: a cron schedule in UTC (five fields, or
    /// `@every 30m`, `@daily`, ...); "off" for none. Default: twice a day, as k3s.
    #[arg(long, default_value = "0 */12 * * *", value_name = "SCHEDULE")]
    pub snapshot_schedule_cron: String,
    /// How many scheduled snapshots to keep (the oldest are deleted after each new one; 0 keeps
    /// all). Snapshots saved with `korral snapshot save` are never pruned.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub snapshot_retention: usize,
    /// Where snapshots are kept (default: DATA_DIR/snapshots).
    #[arg(long, value_name = "DIR")]
    pub snapshot_dir: Option<PathBuf>,
    /// No scheduled snapshots (same as --snapshot-schedule-cron off).
    #[arg(long)]
    pub disable_snapshots: bool,
    /// Gzip-compress snapshots (scheduled ones, and saved ones unless `korral snapshot save`
    /// says otherwise); `korral snapshot restore` decompresses them.
    #[arg(long)]
    pub snapshot_compress: bool,
}

impl Snapshots {
    /// The schedule these flags ask for (`None`: snapshots only on demand).
    pub fn policy(&self) -> Result<Option<apiserver::snapshots::schedule::Policy>, String> {
        if self.disable_snapshots {
            return Ok(None);
        }
        let schedule = apiserver::snapshots::schedule::parse(&self.snapshot_schedule_cron)
            .map_err(|e| format!("--snapshot-schedule-cron: {e}"))?;
        Ok(
            schedule.map(|schedule| apiserver::snapshots::schedule::Policy {
                schedule,
                spec: self.snapshot_schedule_cron.clone(),
                retention: self.snapshot_retention,
            }),
        )
    }
}

/// Cluster networking flags: address ranges and the cluster DNS.
#[derive(clap::Args, Clone, Debug)]
pub struct Network {
    /// The range Service cluster IPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = parse_cidr)]
    pub service_cidr: (Ipv4Addr, u8),
    /// The pod network, split into a /24 per node.
    #[arg(long, default_value = "10.244.0.0/16", value_parser = parse_cidr)]
    pub cluster_cidr: (Ipv4Addr, u8),
    /// The cluster DNS server's UDP and TCP address ("none": no DNS server); by default
    /// the API server's IP and a free port (pods reach it through the kube-dns Service).
    #[arg(long, value_name = "ADDR|none")]
    pub dns_listen: Option<String>,
    /// The address the kube-dns Endpoints name (default: the DNS listen IP;
    /// for 0.0.0.0 the API server's advertised address).
    #[arg(long)]
    pub dns_advertise_address: Option<Ipv4Addr>,
    /// A DNS server for names outside the cluster domain (default: such names are refused).
    #[arg(long)]
    pub dns_upstream: Option<SocketAddr>,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    apiserver::ipam::parse_cidr(s)
        .ok_or_else(|| format!("{s:?} is not an IPv4 CIDR (a.b.c.d/n, n ≤ 30)"))
}

impl Network {
    /// The DNS server's configuration (`None` when disabled); a wildcard
    /// listener is published at the API server's advertised address.
    pub fn dns(
        &self,
        api_listen: SocketAddr,
        api_advertise: IpAddr,
    ) -> Result<Option<DnsConfig>, String> {
        let listen = match self.dns_listen.as_deref() {
            Some("none") => return Ok(None),
            Some(a) => a
                .parse::<SocketAddr>()
                .map_err(|e| format!("--dns-listen {a:?}: {e}"))?,
            None => SocketAddr::new(api_listen.ip(), 0),
        };
        let mut c = DnsConfig::new(listen);
        c.advertise = self.dns_advertise_address.or(match api_advertise {
            IpAddr::V4(ip) if listen.ip().is_unspecified() => Some(ip),
            _ => None,
        });
        c.upstream = self.dns_upstream;
        c.domain = self.cluster_domain.clone();
        // kubeadm's choice: the 10th address of the service range
        c.service_ip = Some(Ipv4Addr::from(u32::from(self.service_cidr.0) + 10));
        Ok(Some(c))
    }
}

impl Args {
    /// The server configuration these flags describe.
    pub fn config(&self) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::new(&self.data_dir);
        config.snapshot_dir = self.snapshots.snapshot_dir.clone();
        config.snapshot_schedule = self.snapshots.policy()?;
        config.snapshot_compress = self.snapshots.snapshot_compress;
        config.listen = self.listen;
        config.advertise_address = self.advertise_address;
        // kubeadm's: the in-cluster name with the cluster domain
        config.extra_sans = std::iter::once(format!(
            "kubernetes.default.svc.{}",
            self.network.cluster_domain
        ))
        .chain(self.tls_sans.iter().cloned())
        .collect();
        config.watch_list = self.watch_list;
        config.watch_cache = self.watch_cache;
        config.disabled_admission_plugins = self.disable_admission_plugins.clone();
        config.anonymous_auth = self.anonymous_auth;
        config.audit = self
            .audit_policy_file
            .clone()
            .zip(self.audit_log_path.clone());
        config.ipam.service_cidr = self.network.service_cidr;
        config.ipam.cluster_cidr = self.network.cluster_cidr;
        config.insecure_listen = self
            .insecure_port
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        if !self.etcd_servers.is_empty() {
            let mut opts = EtcdOptions::new(self.etcd_servers.clone());
            opts.prefix = self.etcd_prefix.clone();
            if self.etcd_cafile.is_some() || self.etcd_certfile.is_some() {
                opts.tls = Some(EtcdTls {
                    ca_file: self.etcd_cafile.clone(),
                    cert_file: self.etcd_certfile.clone(),
                    key_file: self.etcd_keyfile.clone(),
                    domain_name: None,
                });
            }
            if let Some(user) = &self.etcd_user {
                opts.auth = Some(EtcdAuth {
                    user: user.clone(),
                    password: self.etcd_password.clone().unwrap_or_default(),
                });
            }
            config.etcd = Some(opts);
        }
        Ok(config)
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("korral server: cannot start the async runtime: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("korral server: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    runtime.block_on(async move {
        let server = match start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("korral server: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        let options = match args.tuning.options(Some(&args.data_dir.join("pki"))) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("korral server: {e}");
                server.shutdown().await;
                return ExitCode::from(output::ERROR);
            }
        };
        let controllers = match crate::cli::controllers::start_in_process(
            &args.data_dir.join("controller.kubeconfig"),
            &args.controllers,
            crate::cli::controllers::default_identity(),
            options,
        ) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("korral server: --controllers: {e}");
                server.shutdown().await;
                return ExitCode::from(output::ERROR);
            }
        };
        let dns = match start_dns(
            &args.network,
            args.listen,
            args.advertise_address,
            &args.data_dir,
        )
        .await
        {
            Ok(d) => d,
            Err(e) => {
                eprintln!("korral server: {e}");
                let _ = controllers.0.send(true);
                let _ = controllers.1.await;
                server.shutdown().await;
                return ExitCode::from(output::ERROR);
            }
        };
        let intake = if args.intake {
            let secret = match &args.intake_webhook_secret_file {
                Some(f) => match std::fs::read_to_string(f) {
                    Ok(s) => Some(s.trim().to_string()),
                    Err(e) => {
                        eprintln!(
                            "korral server: --intake-webhook-secret-file {}: {e}",
                            f.display()
                        );
                        return ExitCode::from(output::ERROR);
                    }
                },
                None => None,
            };
            match crate::cli::up::start_intake(
                &server,
                &args.data_dir,
                args.intake_webhook_listen,
                secret,
                crate::cli::controllers::default_identity(),
            ) {
                Ok(i) => Some(i),
                Err(e) => {
                    eprintln!("korral server: {e}");
                    None
                }
            }
        } else {
            None
        };
        eprintln!("korral server listening on {}", server.url);
        eprintln!(
            "  kubectl --kubeconfig {} get all -A",
            server.kubeconfig.display()
        );
        shutdown_signal().await;
        eprintln!("korral server: shutting down");
        if let Some(i) = intake {
            i.stop().await;
        }
        let _ = controllers.0.send(true);
        let _ = controllers.1.await;
        drop(dns);
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Starts the cluster DNS server (as the controller identity) unless
/// `network` disables it; `listen` and `advertise` are the API server's.
pub async fn start_dns(
    network: &Network,
    listen: SocketAddr,
    advertise: Option<IpAddr>,
    data_dir: &std::path::Path,
) -> Result<Option<reconcilers::dns::RunningDns>, String> {
    let advertise = advertise.unwrap_or_else(|| apiserver::server::advertise_address(listen.ip()));
    let Some(config) = network.dns(listen, advertise)? else {
        return Ok(None);
    };
    let client = reconcilers::runtime::Client::from_kubeconfig(
        Some(&data_dir.join("controller.kubeconfig")),
        "korral-dns",
    )
    .map_err(|e| format!("cluster DNS: {e}"))?;
    reconcilers::dns::start(client, config).await.map(Some)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
