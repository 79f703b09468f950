//! `korral node`: the node daemon (one node, or `--simulate N` simulated
//! nodes in one process), and the hidden `korral node-shim` the process
//! runtime launches containers through.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use node::config::{parse_label, parse_taint};
use node::daemon::{Daemon, RuntimeFactory};
use node::runtime::Runtime;
use node::runtime::process::{PodIps, Process};
use node::runtime::simulated::Simulated;
use node::{NodeConfig, Timings};
use reconcilers::runtime::kubeconfig::{KubeConfig, resolve_path};
use reconcilers::runtime::{Client, ControllerMetrics};
use schemas::quantity::Amount;

use crate::cli::output;

/// How many simulated nodes share one API connection (each holds a watch stream;
/// a connection carries up to `apiserver::server::HTTP2_MAX_STREAMS`).
const SIMULATED_PER_CONNECTION: usize = 100;

/// Which runtime runs the containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// containerd + runc (root; images pulled from registries or imported with `korral image import`).
    Containerd,
    /// Host processes (no root; the command runs on the host).
    Process,
    /// No processes; pods turn Running/Ready after a delay.
    Simulated,
}

/// Whether the node runs the service proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyMode {
    /// iptables with the containerd runtime (pods have their own network), none otherwise.
    Auto,
    /// The iptables proxy (root).
    Iptables,
    /// No service proxy.
    None,
}

/// Whether the node runs the built-in service load balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceLbMode {
    /// LoadBalancer Services on the host, and NodePorts too when no iptables proxy serves them
    /// (not on simulated nodes).
    Auto,
    /// No service load balancer.
    Off,
}

/// Pod IPs of the process runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcessIps {
    /// Every pod has the node's IP.
    Host,
    /// Each pod gets its own 127.x.y.z address.
    Loopback,
}

/// Parses `10s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 10s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Where the containerd runtime finds containerd and registries (`korral node` and `korral up`).
#[derive(clap::Args)]
pub struct ContainerdArgs {
    /// containerd's gRPC socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub containerd_address: PathBuf,
    /// containerd namespace for the node's containers and images.
    #[arg(long, default_value = "korral")]
    pub containerd_namespace: String,
    /// containerd snapshotter.
    #[arg(long, default_value = "overlayfs")]
    pub snapshotter: String,
    /// The registries' mirrors, TLS and credentials (k3s's `registries.yaml` format), for image pulls
    /// of the containerd runtime.
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
}

impl ContainerdArgs {
    /// The runtime's options for node `node` with its data in `data_dir` (reads the registry config).
    pub fn options(
        &self,
        node: &str,
        data_dir: PathBuf,
    ) -> Result<node::runtime::containerd::Options, String> {
        let registries = match &self.registry_config {
            Some(p) => node::runtime::containerd::registry_config::RegistryConfig::load(p)?,
            None => Default::default(),
        };
        Ok(node::runtime::containerd::Options {
            address: self.containerd_address.clone(),
            namespace: self.containerd_namespace.clone(),
            snapshotter: self.snapshotter.clone(),
            node: node.to_string(),
            data_dir,
            registries,
        })
    }
}

/// Arguments of `korral node`.
#[derive(clap::Args)]
pub struct Args {
    /// The kubeconfig (a `node:NAME` identity; `--simulate` needs one that may write every Node, e.g. admin);
    /// not read with --server/--token.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Join this API server (`https://HOST:PORT`) with --token instead of a kubeconfig: the node
    /// asks for its own client certificate (kubelet TLS bootstrapping), keeps it in its data
    /// directory and renews it before it expires.
    #[arg(long, requires = "token", conflicts_with = "simulate")]
    server: Option<String>,
    /// The join token (`K10<CA hash>::<id>.<secret>`, from `korral token create --bootstrap`), or a
    /// bare bootstrap token `<id>.<secret>` with --ca-cert-hash (used only with --server).
    #[arg(long, env = "KORRAL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The CA's hash for a bare --token, `sha256:<hex>` (kubeadm's --discovery-token-ca-cert-hash).
    #[arg(long, requires = "token")]
    ca_cert_hash: Option<String>,
    /// How long to wait for the client certificate to be approved and signed.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    csr_timeout: Duration,
    /// The Node's name (default: the hostname); with --simulate, the prefix of the names.
    #[arg(long)]
    name: Option<String>,
    /// The container runtime.
    #[arg(long, value_enum, default_value = "process")]
    runtime: RuntimeKind,
    /// Run COUNT simulated nodes (NAME-0 … NAME-COUNT-1) in this process.
    #[arg(long, value_name = "COUNT")]
    simulate: Option<usize>,
    /// Where pod volumes, logs and container records live (default ./.korral/nodes/NAME).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The logs/exec endpoint (HTTPS; port 0 picks a free one).
    #[arg(long, default_value = "0.0.0.0:10250")]
    listen: SocketAddr,
    /// The node's IP (default: the local address that routes to the API server).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// A label for the Node, `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// A taint to register with, `key[=value]:Effect` (repeatable).
    #[arg(long = "taint", value_name = "TAINT")]
    taints: Vec<String>,
    /// The most pods the node runs.
    #[arg(long, default_value_t = 110)]
    max_pods: i64,
    /// cpu capacity to report (e.g. 4 or 500m; default: the machine's).
    #[arg(long)]
    cpu: Option<String>,
    /// Memory capacity to report (e.g. 8Gi; default: the machine's).
    #[arg(long)]
    memory: Option<String>,
    /// Lease renewal period.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// How often node conditions are checked.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    status_interval: Duration,
    /// How often every pod is re-synced (volumes refreshed).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    sync_period: Duration,
    /// First crash-loop back-off delay (doubles per crash).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    backoff_base: Duration,
    /// Longest crash-loop back-off delay.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    backoff_max: Duration,
    /// Delay before a simulated container runs.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    simulated_start_delay: Duration,
    /// How often container and node CPU and memory are sampled (the CPU rate's window).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    housekeeping_interval: Duration,
    #[command(flatten)]
    containerd: ContainerdArgs,
    /// The percent of the image filesystem (containerd's snapshotter root) in use at or above
    /// which image garbage collection runs: unused images go, least recently used first, until
    /// usage is at --image-gc-low-threshold (the kubelet's flag; 100 disables it).
    #[arg(long, default_value_t = 85, value_name = "PERCENT")]
    image_gc_high_threshold: u8,
    /// The percent of the image filesystem in use that image garbage collection frees down to
    /// (less than --image-gc-high-threshold).
    #[arg(long, default_value_t = 80, value_name = "PERCENT")]
    image_gc_low_threshold: u8,
    /// The minimum age of an unused image (since the node first saw it) before it is garbage
    /// collected.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    image_minimum_gc_age: Duration,
    /// How often image garbage collection runs (the kubelet's fixed 5 minutes).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    image_gc_period: Duration,
    /// Pod IPs of the process runtime.
    #[arg(long, value_enum, default_value = "host")]
    process_pod_ips: ProcessIps,
    /// The service proxy (iptables rules for cluster IPs and node ports).
    #[arg(long, value_enum, default_value = "auto")]
    proxy_mode: ProxyMode,
    /// The cluster's pod network (traffic from outside it to a service is masqueraded).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: node::proxy::model::Cidr,
    /// How often the proxy re-checks its rules (writing only what changed) and the jump rules.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    proxy_sync_period: Duration,
    /// How often the proxy rewrites all its rules and re-reads the chains present.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    proxy_full_sync_period: Duration,
    /// The shortest time between two proxy syncs (changes in between are coalesced).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    proxy_min_sync_period: Duration,
    /// NodePorts answer on 127.0.0.1 too with the iptables proxy (kube-proxy's flag): sets
    /// net.ipv4.conf.all.route_localnet=1 in the node's network namespace and drops packets to
    /// 127.0.0.0/8 from other addresses unless they go to a NodePort (`=false`: not on 127.0.0.1).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    iptables_localhost_nodeports: bool,
    /// Where the built-in Ingress controller serves HTTP (`off`: nowhere; default 0.0.0.0:80 as root,
    /// off otherwise and for simulated nodes).
    #[arg(long, value_name = "ADDR|off")]
    ingress_http_listen: Option<String>,
    /// Where the Ingress controller serves HTTPS (`off`: nowhere; default 0.0.0.0:443 as root).
    #[arg(long, value_name = "ADDR|off")]
    ingress_https_listen: Option<String>,
    /// The kubeconfig the Ingress controller runs as (default: the node's, which may not read the
    /// Ingresses' TLS Secrets).
    #[arg(long, value_name = "FILE")]
    ingress_kubeconfig: Option<PathBuf>,
    /// The built-in service load balancer (like k3s's ServiceLB): LoadBalancer Services answer on
    /// their port on the node's address and 127.0.0.1; without the iptables proxy, NodePorts too.
    #[arg(long, value_enum, default_value = "auto")]
    service_lb: ServiceLbMode,
    /// The kubeconfig the service load balancer runs as (default: the Ingress controller's, else
    /// the node's, which may not write Services' status).
    #[arg(long, value_name = "FILE")]
    service_lb_kubeconfig: Option<PathBuf>,
    /// The DNS server pods use (default: the cluster IP of the kube-system/kube-dns Service).
    #[arg(long)]
    cluster_dns: Option<std::net::Ipv4Addr>,
    /// The cluster domain of pods' DNS search path.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Remove the service proxy's iptables chains and the routes to other nodes' pods, then exit.
    #[arg(long)]
    cleanup: bool,
}

/// Arguments of the hidden `korral node-shim`.
#[derive(clap::Args)]
pub struct ShimArgs {
    /// The container's record directory.
    #[arg(long)]
    dir: PathBuf,
    /// The log file.
    #[arg(long)]
    log_file: PathBuf,
    /// The container's mount plan (JSON): run it in its own mount namespace.
    #[arg(long)]
    mounts: Option<PathBuf>,
    /// The command.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Runs the shim.
pub fn shim(args: ShimArgs) -> ExitCode {
    let code = node::runtime::process::shim::run(
        &args.dir,
        &args.log_file,
        &args.command,
        args.mounts.as_deref(),
    );
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn quantity(s: &Option<String>, millis: bool) -> Result<Option<i64>, String> {
    s.as_ref()
        .map(|v| {
            v.parse::<Amount>()
                .map(|q| if millis { q.millis() } else { q.value() })
                .map_err(|e| e.to_string())
        })
        .transpose()
}

fn config(args: &Args, name: &str) -> Result<NodeConfig, String> {
    let data_dir = match (&args.data_dir, args.simulate) {
        (Some(d), Some(_)) => d.join(name),
        (Some(d), None) => d.clone(),
        (None, _) => PathBuf::from(".korral/nodes").join(name),
    };
    let mut c = NodeConfig::new(name, data_dir);
    for l in &args.labels {
        let (k, v) = parse_label(l)?;
        c.labels.insert(k, v);
    }
    for t in &args.taints {
        c.taints.push(parse_taint(t)?);
    }
    c.node_ip = args.node_ip;
    c.listen = Some(args.listen);
    c.max_pods = args.max_pods;
    c.cpu_millis = quantity(&args.cpu, true)?;
    c.memory_bytes = quantity(&args.memory, false)?;
    c.image_gc = node::pods::image_gc::Policy {
        high_threshold_percent: args.image_gc_high_threshold,
        low_threshold_percent: args.image_gc_low_threshold,
        min_age: args.image_minimum_gc_age,
        period: args.image_gc_period,
    };
    c.image_gc.validate()?;
    let proxy = match args.proxy_mode {
        ProxyMode::Iptables => true,
        ProxyMode::Auto => args.runtime == RuntimeKind::Containerd && args.simulate.is_none(),
        ProxyMode::None => false,
    };
    c.proxy = proxy.then_some(node::proxy::ProxyConfig {
        rules: node::proxy::rules::RuleConfig {
            cluster_cidr: Some(args.cluster_cidr),
            local_pod_cidr: None,
            localhost_nodeports: args.iptables_localhost_nodeports,
        },
        sync_period: args.proxy_sync_period,
        full_sync_period: args.proxy_full_sync_period,
        min_sync_interval: args.proxy_min_sync_period,
    });
    c.pod_routes = args.runtime == RuntimeKind::Containerd && args.simulate.is_none();
    let http = node::ingress::listen_arg(
        args.ingress_http_listen.as_deref(),
        SocketAddr::from(([0, 0, 0, 0], 80)),
    )?;
    let https = node::ingress::listen_arg(
        args.ingress_https_listen.as_deref(),
        SocketAddr::from(([0, 0, 0, 0], 443)),
    )?;
    if (http.is_some() || https.is_some()) && args.simulate.is_none() {
        c.ingress = Some(node::ingress::IngressConfig {
            http_listen: http,
            https_listen: https,
            kubeconfig: args.ingress_kubeconfig.clone(),
            address: None,
        });
    }
    if args.service_lb == ServiceLbMode::Auto && args.simulate.is_none() {
        c.service_lb = Some(node::servicelb::ServiceLbConfig {
            node_ports: !proxy,
            kubeconfig: args
                .service_lb_kubeconfig
                .clone()
                .or(args.ingress_kubeconfig.clone()),
            ..Default::default()
        });
    }
    c.cluster_dns = args.cluster_dns;
    c.cluster_domain = args.cluster_domain.clone();
    c.timings = Timings {
        heartbeat: args.heartbeat_interval,
        status_check: args.status_interval,
        pod_sync: args.sync_period,
        backoff_base: args.backoff_base,
        backoff_max: args.backoff_max,
        simulated_start: args.simulated_start_delay,
        housekeeping: args.housekeeping_interval,
        ..Timings::default()
    };
    Ok(c)
}

fn factory(args: &Args, config: &NodeConfig) -> Result<RuntimeFactory, String> {
    let data_dir = config.data_dir.clone();
    Ok(match args.runtime {
        RuntimeKind::Simulated => {
            let delay = config.timings.simulated_start;
            Box::new(move |reg| {
                Box::pin(async move {
                    Ok(Arc::new(Simulated::new(delay, reg.pod_cidr.as_deref()))
                        as Arc<dyn Runtime>)
                })
            })
        }
        RuntimeKind::Process => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find the korral binary: {e}"))?;
            let mode = args.process_pod_ips;
            Box::new(move |reg| {
                Box::pin(async move {
                    let ips = match mode {
                        ProcessIps::Host => PodIps::Host(reg.host_ip.clone()),
                        ProcessIps::Loopback => loopback_ips(reg.pod_cidr.as_deref()),
                    };
                    let shim = vec![exe.to_string_lossy().into_owned(), "node-shim".to_string()];
                    Process::new(&data_dir, shim, ips)
                        .map(|p| Arc::new(p) as Arc<dyn Runtime>)
                        .map_err(|e| e.to_string())
                })
            })
        }
        RuntimeKind::Containerd => {
            containerd_factory(args.containerd.options(&config.name, data_dir.clone())?)
        }
    })
}

/// The process runtime's `PodIps::Loopback` for a node's pod CIDR: each pod
/// on its own `127.B.C.x`, B and C from the CIDR's second and third octets.
pub fn loopback_ips(pod_cidr: Option<&str>) -> PodIps {
    let o = pod_cidr
        .and_then(|c| c.split('/').next())
        .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
        .map(|ip| ip.octets())
        .unwrap_or([10, 244, 0, 0]);
    PodIps::Loopback([o[1], o[2]])
}

/// The containerd runtime, connected once the node knows its pod CIDR.
pub fn containerd_factory(opts: node::runtime::containerd::Options) -> RuntimeFactory {
    Box::new(move |reg| {
        Box::pin(async move {
            node::runtime::containerd::Containerd::connect(opts, reg.pod_cidr.as_deref())
                .await
                .map(|c| Arc::new(c) as Arc<dyn Runtime>)
                .map_err(|e| e.to_string())
        })
    })
}

/// Runs `korral node` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("korral node: cannot start the async runtime: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    runtime.block_on(async move {
        match run_async(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("korral node: {e}");
                ExitCode::from(output::ERROR)
            }
        }
    })
}

/// `--cleanup`: what the node installed on the machine's network goes.
async fn cleanup() -> Result<(), String> {
    node::proxy::cleanup().await?;
    node::routes::cleanup().await?;
    eprintln!("korral node: removed the service proxy's chains and the pod routes");
    Ok(())
}

async fn run_async(mut args: Args) -> Result<(), String> {
    if args.cleanup {
        return cleanup().await;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = args.name.clone().unwrap_or_else(node::machine::hostname);
    let join = match (&args.server, &args.token) {
        (Some(server), Some(token)) => Some(join_of(&args, server, token, &base)?),
        _ => None,
    };
    let path = match &join {
        Some(j) => {
            // bootstrapped (or kept from an earlier start) before anything else runs
            j.credentials().await?;
            j.kubeconfig()
        }
        None => resolve_path(args.kubeconfig.as_deref()),
    };
    let kc = KubeConfig::load(&path).map_err(|e| e.to_string())?;
    let client = Client::new(&kc, "korral-node").map_err(|e| e.to_string())?;
    let names: Vec<String> = match args.simulate {
        Some(n) => {
            args.runtime = RuntimeKind::Simulated;
            (0..n).map(|i| format!("{base}-{i}")).collect()
        }
        None => vec![base.clone()],
    };
    let metrics = ControllerMetrics::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    // simulated nodes share one endpoint for their resource figures
    let (shared, shared_task) = match (args.simulate, &kc.ca_pem) {
        (Some(_), Some(ca)) => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".korral/nodes"))
                .join(format!("{base}-endpoint"));
            let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            if let Some(ip) = args
                .node_ip
                .or_else(|| node::machine::address_towards(client.base_url()))
            {
                sans.push(ip.to_string());
            }
            let (shared, task) =
                node::server::stats::serve_shared(args.listen.ip(), &dir, ca, &sans)?;
            (Some(shared), Some(task))
        }
        _ => (None, None),
    };
    let mut client = client;
    for (i, name) in names.iter().enumerate() {
        // simulated nodes share a connection per SIMULATED_PER_CONNECTION: each node holds a
        // watch (an HTTP/2 stream) and a connection carries a bounded number of streams
        if i > 0 && i % SIMULATED_PER_CONNECTION == 0 {
            client = Client::new(&kc, "korral-node").map_err(|e| e.to_string())?;
        }
        let mut cfg = config(&args, name)?;
        if args.simulate.is_some() {
            cfg.listen = None;
            cfg.shared_stats = shared.clone();
            cfg.workers = 2;
        }
        if args.runtime != RuntimeKind::Simulated {
            std::fs::create_dir_all(&cfg.data_dir)
                .map_err(|e| format!("{}: {e}", cfg.data_dir.display()))?;
            cfg.data_dir = cfg
                .data_dir
                .canonicalize()
                .map_err(|e| format!("{}: {e}", cfg.data_dir.display()))?;
        }
        let daemon = Daemon {
            client: client.clone(),
            ca_pem: kc.ca_pem.clone(),
            runtime: factory(&args, &cfg)?,
            config: cfg,
            metrics: metrics.clone(),
            materialize: args.runtime != RuntimeKind::Simulated,
        };
        let mut rx = stop_rx.clone();
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                while !*rx.borrow_and_update() {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            };
            if let Err(e) = daemon.run(stopped).await {
                eprintln!("korral node {name}: {e}");
                return Err(e);
            }
            Ok(())
        }));
    }
    if let Some(j) = &join {
        let credentials = node::tls_bootstrap::files::read(&path)?
            .ok_or_else(|| format!("{}: the node's kubeconfig vanished", path.display()))?;
        let rotation = node::tls_bootstrap::rotation::Rotation {
            client: client.clone(),
            node: j.node.clone(),
            kubeconfig: path.clone(),
            credentials,
            csr_timeout: j.csr_timeout,
        };
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            rotation
                .run(async move {
                    while !*rx.borrow_and_update() {
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                })
                .await;
            Ok(())
        }));
    }
    eprintln!(
        "korral node: {} node(s) ({}), runtime {:?}",
        names.len(),
        names.first().cloned().unwrap_or_default(),
        args.runtime
    );
    let mut failed = None;
    tokio::select! {
        _ = crate::cli::server::shutdown_signal() => {}
        r = futures_first(&mut tasks) => failed = r,
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        // the one that failed has already been awaited by select_all
        if !t.is_finished() {
            let _ = t.await;
        }
    }
    if let Some(t) = shared_task {
        t.abort();
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What `--server` and `--token` ask for: node `name` joining with its data
/// in the same directory `config` gives it.
fn join_of(
    args: &Args,
    server: &str,
    token: &str,
    name: &str,
) -> Result<node::tls_bootstrap::Join, String> {
    if !server.starts_with("https://") {
        return Err(format!("--server {server:?} must be an https:// URL"));
    }
    let token = node::tls_bootstrap::token::parse(token, args.ca_cert_hash.as_deref())?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".korral/nodes").join(name));
    Ok(node::tls_bootstrap::Join {
        server: server.trim_end_matches('/').to_string(),
        token,
        node: name.to_string(),
        data_dir,
        csr_timeout: args.csr_timeout,
    })
}

/// Resolves when the first daemon fails (with its error).
async fn futures_first(
    tasks: &mut [tokio::task::JoinHandle<Result<(), String>>],
) -> Option<String> {
    if tasks.is_empty() {
        std::future::pending::<()>().await;
    }
    let (r, _, _) = futures_util::future::select_all(tasks.iter_mut()).await;
    match r {
        Ok(Ok(())) => std::future::pending().await,
        Ok(Err(e)) => Some(e),
        Err(e) => Some(format!("a node daemon panicked: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
