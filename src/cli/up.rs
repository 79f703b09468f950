//! `korral up [PATH | GIT-URL]`: everything in one process for a first run —
//! the API server on the embedded store, the controllers, one node (process
//! runtime), the intake reconciler with a source for PATH (default
//! `fixtures/demo`), the Ingress controller on 127.0.0.1:8080/8443, the
//! service load balancer (LoadBalancer and NodePort Services on 127.0.0.1) — printing
//! what it does and how to reach it, until Ctrl-C stops it all. Also the
//! in-process start of intake that `korral server` uses.

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

/// Starts one node daemon with the process runtime in this process (its
/// own `node:NAME` identity; each pod gets its own loopback IP, so pods
/// that bind `$(POD_IP)` do not collide); returns a sender that stops it.
/// A node daemon running in this process.
struct LocalNode {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    runtime: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<dyn node::runtime::Runtime>>>>,
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

fn start_node(
    server: &RunningServer,
    data_dir: &Path,
    name: &str,
    ingress: (Option<SocketAddr>, Option<SocketAddr>),
) -> Result<LocalNode, String> {
    use apiserver::auth::Role;
    use node::daemon::Daemon;
    use node::runtime::Runtime;
    use node::runtime::process::{PodIps, Process};

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
    config.node_ip = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    if ingress.0.is_some() || ingress.1.is_some() {
        config.ingress = Some(node::ingress::IngressConfig {
            http_listen: ingress.0,
            https_listen: ingress.1,
            kubeconfig: Some(data_dir.join("ingress.kubeconfig")),
            address: None,
        });
    }
    // the service load balancer: LoadBalancer Services and NodePorts on 127.0.0.1
    config.service_lb = Some(node::servicelb::ServiceLbConfig {
        kubeconfig: Some(controller_kubeconfig(
            server,
            data_dir,
            "korral-service-lb",
            "service-lb.kubeconfig",
        )?),
        ..Default::default()
    });
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the korral binary: {e}"))?;
    let slot: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<dyn Runtime>>>> =
        Default::default();
    let keep = slot.clone();
    let runtime: node::daemon::RuntimeFactory = Box::new(move |reg| {
        Box::pin(async move {
            let o = reg
                .pod_cidr
                .as_deref()
                .and_then(|c| c.split('/').next())
                .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
                .map(|ip| ip.octets())
                .unwrap_or([10, 244, 0, 0]);
            let shim = vec![exe.to_string_lossy().into_owned(), "node-shim".to_string()];
            let rt = Process::new(&node_dir, shim, PodIps::Loopback([o[1], o[2]]))
                .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn Runtime>)
                .map_err(|e| e.to_string())?;
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
    /// HTTPS address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
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
    let rt = match runtime("up") {
        Ok(r) => r,
        Err(c) => return c,
    };
    rt.block_on(async move {
        let mut config = ServerConfig::new(&args.data_dir);
        config.listen = args.listen;
        let server = match start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("korral up: {e}");
                return ExitCode::from(output::ERROR);
            }
        };
        eprintln!("korral up: API server on {} (embedded store in {})", server.url, args.data_dir.display());
        let identity = crate::cli::controllers::default_identity();
        let controllers = match crate::cli::controllers::start_in_process(
            &args.data_dir.join("controller.kubeconfig"),
            "all",
            identity.clone(),
            reconcilers::controllers::ControllerOptions::default(),
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
        let node_name = node::machine::hostname();
        let node = match start_node(&server, &args.data_dir, &node_name, ingress) {
            Ok(n) => {
                eprintln!("korral up: node {node_name} running pods as host processes (data in {})", args.data_dir.join("nodes").display());
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
