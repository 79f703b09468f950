//! `korral up [PATH | GIT-URL]`: everything in one process for a first run —
//! the API server on the embedded store, the controllers, one node
//! (containerd with a pod network, the iptables service proxy and the
//! cluster DNS when run as root where containerd runs, host processes
//! otherwise: [`crate::cli::up_runtime`]), the intake reconciler with a
//! source for PATH (default `fixtures/demo`), the Ingress controller on
//! 127.0.0.1:8080/8443, the service load balancer (LoadBalancer and NodePort
//! Services on 127.0.0.1) — printing what it does and how to reach it, until
//! Ctrl-C stops it all. Also the in-process start of intake that `korral
//! server` uses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use apiserver::server::{RunningServer, ServerConfig, start};
use intake::controller::Config as IntakeConfig;
use intake::drift::text::short_revision;
use intake::metrics::IntakeMetrics;
use k8s_openapi::api::core::v1::Pod;
use reconcilers::runtime::{Client, ControllerMetrics, ListParams};
use schemas::korral::GitSource;

use crate::cli::output;
use crate::cli::sources::runtime;

/// Intake running inside this process.
pub struct IntakeHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    webhook: Option<tokio::task::JoinHandle<()>>,
}

impl IntakeHandle {
    /// Stops the reconciler (releasing its lease) and the webhook.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Some(w) = self.webhook {
            w.abort();
        }
    }
}

/// Starts the GitSource reconciler (and the push webhook on `webhook`, if
/// set) in this process, as the server's `intake` identity; its metrics
/// join the server's `/metrics`.
pub fn start_intake(
    server: &RunningServer,
    data_dir: &Path,
    webhook: Option<SocketAddr>,
    webhook_secret: Option<String>,
    identity: String,
) -> Result<IntakeHandle, String> {
    let client =
        Client::from_kubeconfig(Some(&data_dir.join("intake.kubeconfig")), "korral-intake")
            .map_err(|e| format!("intake: {e}"))?;
    let metrics = IntakeMetrics::new();
    let queue_metrics = ControllerMetrics::new();
    {
        let (m, q) = (metrics.clone(), queue_metrics.clone());
        server
            .app
            .metrics
            .add_collector(move || format!("{}{}", m.render(), q.render()));
    }
    let (stop, rx) = watch::channel(false);
    let task = intake::controller::start(
        client.clone(),
        IntakeConfig::new(data_dir, identity),
        metrics,
        queue_metrics,
        rx,
    );
    let webhook = webhook.map(|addr| {
        tokio::spawn(async move {
            if let Err(e) = intake::webhook::serve(addr, client, webhook_secret).await {
                tracing::error!(%addr, error = %e, "the push webhook stopped");
            }
        })
    });
    Ok(IntakeHandle {
        stop,
        task,
        webhook,
    })
}

/// A node daemon running in this process.
struct LocalNode {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    runtime: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<dyn node::runtime::Runtime>>>>,
    /// It programmed the machine's network (pod routes, the proxy's chains).
    network: bool,
}

/// How the local node runs containers.
enum NodeRuntime {
    /// Host processes, each pod on its own loopback IP (pods that bind
    /// `$(POD_IP)` do not collide).
    Process,
    /// containerd, with the pod network and the iptables service proxy.
    Containerd {
        /// Where containerd is and which namespace and registries to use (the
        /// data directory is the node's).
        opts: node::runtime::containerd::Options,
        /// The cluster's pod network (the proxy masquerades traffic from outside it).
        cluster_cidr: node::proxy::model::Cidr,
        /// The node's address (the API server's advertised one).
        node_ip: std::net::IpAddr,
        /// Image garbage collection's high threshold (percent).
        image_gc_high_threshold: u8,
    },
}

impl LocalNode {
    /// Stops the daemon, then the containers it ran (a daemon alone leaves
    /// them running for its successor; `korral up` stops everything).
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let runtime = self.runtime.lock().ok().and_then(|r| r.clone());
        let Some(rt) = runtime else { return };
        let containers = rt.list().await.unwrap_or_default();
        let mut pods: Vec<String> = Vec::new();
        for c in &containers {
            if c.is_running() {
                let _ = rt.stop(&c.id, Duration::from_secs(2)).await;
            }
            let _ = rt.remove(&c.id).await;
            pods.push(c.pod_uid.clone());
        }
        pods.sort();
        pods.dedup();
        for uid in pods {
            let _ = rt.remove_sandbox(&uid).await;
        }
        if !containers.is_empty() {
            eprintln!("korral up: stopped {} container(s)", containers.len());
        }
        if self.network {
            // what `korral node --cleanup` removes: the proxy's chains and the pod routes
            let cleaned = match node::proxy::cleanup().await {
                Ok(()) => node::routes::cleanup().await,
                Err(e) => Err(e),
            };
            if let Err(e) = cleaned {
                eprintln!("korral up: could not remove the service proxy's rules: {e}");
            }
        }
    }
}

/// The Ingress controller's addresses for `korral up`: each configured one
/// that can be bound now (port 0 resolved to the port found), with a line
/// for the user when one cannot.
fn ingress_addrs(
    http: &str,
    https: &str,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), String> {
    let free = |v: &str| -> Result<Option<SocketAddr>, String> {
        let Some(addr) = node::ingress::listen_arg(Some(v), SocketAddr::from(([127, 0, 0, 1], 0)))?
        else {
            return Ok(None);
        };
        match std::net::TcpListener::bind(addr).and_then(|l| l.local_addr()) {
            Ok(a) => Ok(Some(a)),
            Err(e) => {
                eprintln!("korral up: no Ingress listener on {addr}: {e}");
                Ok(None)
            }
        }
    };
    Ok((free(http)?, free(https)?))
}

/// A kubeconfig for a controller running in the node daemon as its own
/// identity `name` (the Ingress controller reads the Ingresses' TLS
/// Secrets, the service load balancer writes Services' status: the node's
/// identity may do neither), written to `file` in the data directory.
fn controller_kubeconfig(
    server: &RunningServer,
    data_dir: &Path,
    name: &str,
    file: &str,
) -> Result<PathBuf, String> {
    let ca_path = data_dir.join("pki").join("ca.crt");
    let ca =
        std::fs::read_to_string(&ca_path).map_err(|e| format!("{}: {e}", ca_path.display()))?;
    let token = server
        .app
        .tokens
        .ensure(name, &apiserver::auth::Role::Controller)
        .map_err(|e| format!("{name} identity: {e}"))?;
    let path = data_dir.join(file);
    apiserver::kubeconfig::write(&path, &server.url, &ca, name, &token)
        .map_err(|e| format!("{name} kubeconfig: {e}"))?;
    Ok(path)
}

/// Starts one node daemon in this process, as its own `node:NAME` identity.
fn start_node(
    server: &RunningServer,
    data_dir: &Path,
    name: &str,
    ingress: (Option<SocketAddr>, Option<SocketAddr>),
    runtime: NodeRuntime,
) -> Result<LocalNode, String> {
    use apiserver::auth::Role;
    use node::daemon::Daemon;
    use node::runtime::Runtime;
    use node::runtime::process::Process;

    let token = server
        .app
        .tokens
        .ensure(
            &format!("system:node:{name}"),
            &Role::Node(name.to_string()),
        )
        .map_err(|e| format!("node identity: {e}"))?;
    let ca_path = data_dir.join("pki").join("ca.crt");
    let ca =
        std::fs::read_to_string(&ca_path).map_err(|e| format!("{}: {e}", ca_path.display()))?;
    let kubeconfig = data_dir.join("node.kubeconfig");
    apiserver::kubeconfig::write(
        &kubeconfig,
        &server.url,
        &ca,
        &format!("system:node:{name}"),
        &token,
    )
    .map_err(|e| format!("node kubeconfig: {e}"))?;
    let client = Client::from_kubeconfig(Some(&kubeconfig), "korral-node")
        .map_err(|e| format!("node: {e}"))?;
    let node_dir = data_dir.join("nodes").join(name);
    std::fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
    let node_dir = node_dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", node_dir.display()))?;
    let mut config = node::NodeConfig::new(name, node_dir.clone());
    config.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let network = matches!(runtime, NodeRuntime::Containerd { .. });
    match &runtime {
        NodeRuntime::Process => config.node_ip = Some(std::net::IpAddr::from([127, 0, 0, 1])),
        NodeRuntime::Containerd {
            cluster_cidr,
            node_ip,
            image_gc_high_threshold,
            ..
        } => {
            config.image_gc.high_threshold_percent = *image_gc_high_threshold;
            config.image_gc.validate()?;
            config.node_ip = Some(*node_ip);
            // the API server reaches the node's logs/exec endpoint at the node's address
            config.listen = Some(SocketAddr::new(*node_ip, 0));
            config.pod_routes = true;
            config.proxy = Some(node::proxy::ProxyConfig {
                rules: node::proxy::rules::RuleConfig {
                    cluster_cidr: Some(*cluster_cidr),
                    ..Default::default()
                },
                ..Default::default()
            });
        }
    }
    if ingress.0.is_some() || ingress.1.is_some() {
        config.ingress = Some(node::ingress::IngressConfig {
            http_listen: ingress.0,
            https_listen: ingress.1,
            kubeconfig: Some(data_dir.join("ingress.kubeconfig")),
            address: None,
        });
    }
    // the service load balancer: LoadBalancer Services, and NodePorts on 127.0.0.1
    // where no iptables proxy serves them
    config.service_lb = Some(node::servicelb::ServiceLbConfig {
        node_ports: !network,
        kubeconfig: Some(controller_kubeconfig(
            server,
            data_dir,
            "korral-service-lb",
            "service-lb.kubeconfig",
        )?),
        ..Default::default()
    });
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the korral binary: {e}"))?;
    let inner: node::daemon::RuntimeFactory = match runtime {
        NodeRuntime::Process => Box::new(move |reg| {
            Box::pin(async move {
                let shim = vec![exe.to_string_lossy().into_owned(), "node-shim".to_string()];
                let ips = crate::cli::node::loopback_ips(reg.pod_cidr.as_deref());
                Process::new(&node_dir, shim, ips)
                    .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn Runtime>)
                    .map_err(|e| e.to_string())
            })
        }),
        NodeRuntime::Containerd { mut opts, .. } => {
            opts.data_dir = node_dir.clone();
            crate::cli::node::containerd_factory(opts)
        }
    };
    // the runtime is kept to stop its containers when `korral up` stops
    let slot: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<dyn Runtime>>>> =
        Default::default();
    let keep = slot.clone();
    let runtime: node::daemon::RuntimeFactory = Box::new(move |reg| {
        Box::pin(async move {
            let rt = inner(reg).await?;
            if let Ok(mut k) = keep.lock() {
                *k = Some(rt.clone());
            }
            Ok(rt)
        })
    });
    let daemon = Daemon {
        client,
        ca_pem: Some(ca),
        config,
        runtime,
        metrics: ControllerMetrics::new(),
        materialize: true,
    };
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut rx = rx;
        let stopped = async move {
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        if let Err(e) = daemon.run(stopped).await {
            eprintln!("korral up: the node daemon stopped: {e}");
        }
    });
    Ok(LocalNode {
        stop,
        task,
        runtime: slot,
        network,
    })
}

/// Arguments of `korral up`.
#[derive(clap::Args)]
pub struct Args {
    /// A folder of manifests (watched) or a Git repository URL.
    #[arg(default_value = "fixtures/demo", value_name = "PATH|GIT-URL")]
    source: String,
    /// Where the CA, certificates, tokens, kubeconfigs and the store live.
    #[arg(long, default_value = ".korral", env = "KORRAL_DATA_DIR")]
    data_dir: PathBuf,
    /// HTTPS address to listen on (default 127.0.0.1:6443; with the containerd runtime
    /// 0.0.0.0:6443, so that pods reach it through the `kubernetes` Service, as on k3s).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The address published in the `kubernetes` Service (default: the listen address, or for
    /// 0.0.0.0 that of the interface the default route leaves by).
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// The node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's container runtime: containerd when run as root where containerd answers,
    /// host processes otherwise (`korral up` says which it chose and why).
    #[arg(long, value_enum, default_value = "auto")]
    runtime: crate::cli::up_runtime::UpRuntime,
    #[command(flatten)]
    containerd: crate::cli::node::ContainerdArgs,
    /// The percent of the image filesystem in use at or above which the containerd runtime's
    /// image garbage collection runs (`korral node`'s flag; 100 disables it).
    #[arg(long, default_value_t = 85, value_name = "PERCENT")]
    image_gc_high_threshold: u8,
    #[command(flatten)]
    network: crate::cli::server::Network,
    /// The GitSource's name (default: from the folder or repository).
    #[arg(long)]
    name: Option<String>,
    /// The GitSource's namespace (and that of objects naming none).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// With a Git URL: the branch to follow.
    #[arg(long, default_value = "main")]
    branch: String,
    /// How often the source is checked (folders are also watched).
    #[arg(long, default_value = "30s")]
    interval: String,
    /// Where the built-in Ingress controller serves HTTP (`off`: nowhere).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR|off")]
    ingress_http_listen: String,
    /// Where the Ingress controller serves HTTPS (`off`: nowhere).
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR|off")]
    ingress_https_listen: String,
}

fn is_git_url(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || {
        let p = Path::new(s);
        // a bare repository (a working clone is used as a folder: edits show at once)
        p.join("HEAD").is_file() && p.join("objects").is_dir()
    }
}

/// A DNS-label name from a folder or repository name.
fn source_name(s: &str) -> String {
    let base = s
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("app");
    let name: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "app".into()
    } else {
        name.chars().take(63).collect()
    }
}

fn spec_for(args: &Args) -> Result<Value, String> {
    if is_git_url(&args.source) {
        let url = if args.source.contains("://") || args.source.starts_with("git@") {
            args.source.clone()
        } else {
            std::fs::canonicalize(&args.source)
                .map_err(|e| format!("{}: {e}", args.source))?
                .display()
                .to_string()
        };
        return Ok(json!({
            "url": url, "ref": {"branch": args.branch},
            "interval": args.interval, "prune": true,
        }));
    }
    let path = std::fs::canonicalize(&args.source).map_err(|e| {
        format!(
            "{}: {e} (give a folder of manifests or a Git URL; the default is fixtures/demo in a korral checkout)",
            args.source
        )
    })?;
    if !path.is_dir() {
        return Err(format!("{} is not a folder", path.display()));
    }
    Ok(json!({"path": path.display().to_string(), "interval": args.interval, "prune": true}))
}

/// What `korral up` last printed, to print only changes.
#[derive(Default, PartialEq)]
struct Seen {
    sync: Option<String>,
    pods: Option<String>,
}

async fn report_progress(client: &Client, ns: &str, name: &str, seen: &mut Seen) {
    if let Ok(Some(s)) = client.api::<GitSource>(Some(ns)).get_opt(name).await {
        let st = s.status.clone().unwrap_or_default();
        let line = match intake::status::ready(&st) {
            Some(c) if c.status == "True" => format!(
                "synced {} ({} objects)",
                st.last_applied_revision
                    .as_deref()
                    .map(short_revision)
                    .unwrap_or_default(),
                st.inventory.as_ref().map_or(0, Vec::len)
            ),
            Some(c) => {
                let mut l = format!("not synced: {}", c.message);
                for e in st.last_error.iter().flat_map(|e| e.errors.iter().flatten()) {
                    l.push_str(&format!(
                        "\n    {}:{}: {}{}",
                        e.file.as_deref().unwrap_or(""),
                        e.line.unwrap_or(0),
                        e.path
                            .as_deref()
                            .map(|p| format!("{p}: "))
                            .unwrap_or_default(),
                        e.message
                    ));
                }
                l
            }
            None => "waiting for the first sync".into(),
        };
        if seen.sync.as_deref() != Some(line.as_str()) {
            eprintln!("source {ns}/{name}: {line}");
            seen.sync = Some(line);
        }
    }
    if let Ok(pods) = client.api::<Pod>(None).list(&ListParams::default()).await {
        let total = pods.items.len();
        let running = pods
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        let line = format!("pods: {running}/{total} running");
        if total > 0 && seen.pods.as_deref() != Some(line.as_str()) {
            eprintln!("{line}");
            seen.pods = Some(line);
        }
    }
}

/// Runs `korral up` until Ctrl-C.
pub fn run(args: Args) -> ExitCode {
    let spec = match spec_for(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("korral up: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| source_name(&args.source));
    let machine = crate::cli::up_runtime::Machine::probe(&args.containerd.containerd_address);
    let choice = match crate::cli::up_runtime::choose(args.runtime, &machine) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("korral up: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    let node_name = args
        .node_name
        .clone()
        .unwrap_or_else(node::machine::hostname);
    // the node's own data directory is set by start_node
    let containerd_opts = match choice.containerd {
        true => match args.containerd.options(&node_name, PathBuf::new()) {
            Ok(o) => Some(o),
            Err(e) => {
                eprintln!("korral up: --registry-config: {e}");
                return ExitCode::from(output::ERROR);
            }
        },
        false => None,
    };
    let rt = match runtime("up") {
        Ok(r) => r,
        Err(c) => return c,
    };
    rt.block_on(async move {
        let listen = args.listen.unwrap_or(if choice.containerd {
            SocketAddr::from(([0, 0, 0, 0], 6443))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 6443))
        });
        let mut config = ServerConfig::new(&args.data_dir);
        config.listen = listen;
        config.advertise_address = args.advertise_address;
        config.extra_sans = vec![format!("kubernetes.default.svc.{}", args.network.cluster_domain)];
        config.ipam.service_cidr = args.network.service_cidr;
        config.ipam.cluster_cidr = args.network.cluster_cidr;
        let advertised = args
            .advertise_address
            .unwrap_or_else(|| apiserver::server::advertise_address(listen.ip()));
        let server = match start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("korral up: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        eprintln!("korral up: API server on {} (embedded store in {})", server.url, args.data_dir.display());
        eprintln!(
            "korral up: runtime {}: {}",
            if choice.containerd { "containerd" } else { "process" },
            choice.why
        );
        if choice.containerd && advertised.is_loopback() {
            eprintln!("korral up: the API server is published at {advertised}, which pods in their own network namespaces cannot reach (give --listen or --advertise-address an address they can)");
        }
        let identity = crate::cli::controllers::default_identity();
        let controllers = match crate::cli::controllers::start_in_process(
            &args.data_dir.join("controller.kubeconfig"),
            "all",
            identity.clone(),
            reconcilers::controllers::ControllerOptions {
                // nodes may join `korral up` by token too
                cluster_signing: crate::cli::controllers::signing_ca(
                    None,
                    None,
                    Some(&args.data_dir.join("pki")),
                )
                .unwrap_or_default(),
                ..Default::default()
            },
        ) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("korral up: controllers: {e}");
                server.shutdown().await;
                return ExitCode::from(output::ERROR);
            }
        };
        eprintln!("korral up: controllers running: {}", reconcilers::controllers::ALL.join(", "));
        let mut ingress = match ingress_addrs(&args.ingress_http_listen, &args.ingress_https_listen) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("korral up: {e}");
                (None, None)
            }
        };
        if ingress.0.is_some() || ingress.1.is_some() {
            // the class exists before intake applies anything, so Ingresses without one get it
            match controller_kubeconfig(&server, &args.data_dir, "korral-ingress", "ingress.kubeconfig")
                .and_then(|p| Client::from_kubeconfig(Some(&p), "korral-up").map_err(|e| e.to_string()))
            {
                Ok(c) => node::ingress::ensure_class(&c).await,
                Err(e) => {
                    eprintln!("korral up: no Ingress controller: {e}");
                    ingress = (None, None);
                }
            }
        }
        let intake = match start_intake(&server, &args.data_dir, None, None, identity) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("korral up: {e}");
                let _ = controllers.0.send(true);
                server.shutdown().await;
                return ExitCode::from(output::ERROR);
            }
        };
        // pods in their own network namespaces resolve Service names through the cluster DNS
        let dns = if choice.containerd {
            match crate::cli::server::start_dns(&args.network, listen, args.advertise_address, &args.data_dir).await {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("korral up: no cluster DNS: {e}");
                    None
                }
            }
        } else {
            None
        };
        let node_runtime = if let Some(opts) = containerd_opts {
            let (addr, bits) = args.network.cluster_cidr;
            NodeRuntime::Containerd {
                opts,
                cluster_cidr: node::proxy::model::Cidr { addr, bits },
                node_ip: advertised,
                image_gc_high_threshold: args.image_gc_high_threshold,
            }
        } else {
            NodeRuntime::Process
        };
        let how = if choice.containerd {
            format!(
                "running pods in containerd containers (namespace {} at {}) on a pod network from {}/{} with the iptables service proxy",
                args.containerd.containerd_namespace,
                args.containerd.containerd_address.display(),
                args.network.cluster_cidr.0,
                args.network.cluster_cidr.1
            )
        } else {
            "running pods as host processes".to_string()
        };
        let node = match start_node(&server, &args.data_dir, &node_name, ingress, node_runtime) {
            Ok(n) => {
                eprintln!("korral up: node {node_name} {how} (data in {})", args.data_dir.join("nodes").display());
                Some(n)
            }
            Err(e) => {
                eprintln!("korral up: no node: {e}");
                None
            }
        };
        if !reconcilers::controllers::ALL.contains(&"scheduler") {
            eprintln!("korral up: this build has no scheduler yet: pods stay Pending until something binds them to {node_name}");
        }
        let admin = match Client::from_kubeconfig(Some(&server.kubeconfig), "korral-up") {
            Ok(c) => c,
            Err(e) => {
                eprintln!("korral up: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        let ns = args.namespace.clone();
        let what = spec.get("url").or(spec.get("path")).and_then(Value::as_str).unwrap_or("").to_string();
        if let Err(e) = crate::cli::sync::apply_source(&admin, &ns, &name, spec).await {
            eprintln!("korral up: {e}");
        } else {
            eprintln!("korral up: source {ns}/{name} ← {what}");
        }
        if node.is_some() && (ingress.0.is_some() || ingress.1.is_some()) {
            let urls: Vec<String> = [("http", ingress.0), ("https", ingress.1)]
                .into_iter()
                .filter_map(|(scheme, a)| a.map(|a| format!("{scheme}://{a}/")))
                .collect();
            eprintln!("korral up: Ingress controller (IngressClass korral) on {}", urls.join(" and "));
        }
        if node.is_some() {
            eprintln!("korral up: LoadBalancer Services answer on 127.0.0.1:<port>, NodePorts on 127.0.0.1:<nodePort>");
            if choice.containerd {
                eprintln!("korral up: pod and Service cluster IPs answer from this machine");
            }
        }
        eprintln!(
            "korral up: ready. In another terminal:\n    kubectl --kubeconfig {} get pods\n    korral --kubeconfig {} sources\n  Ctrl-C stops everything.",
            server.kubeconfig.display(),
            server.kubeconfig.display()
        );
        let mut seen = Seen::default();
        let stop = crate::cli::server::shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => report_progress(&admin, &ns, &name, &mut seen).await,
            }
        }
        eprintln!("korral up: stopping");
        intake.stop().await;
        if let Some(n) = node {
            n.stop().await;
        }
        drop(dns);
        let _ = controllers.0.send(true);
        let _ = controllers.1.await;
        server.shutdown().await;
        eprintln!("korral up: stopped");
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_and_kinds() {
        assert_eq!(source_name("fixtures/demo"), "demo");
        assert_eq!(source_name("https://example.org/team/My_App.git"), "my-app");
        assert_eq!(source_name("/"), "app");
        assert!(is_git_url("https://example.org/a.git"));
        assert!(is_git_url("git@example.org:a/b.git"));
        assert!(!is_git_url("fixtures/demo"));
    }
}
