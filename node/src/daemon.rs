//! One node daemon, wired: register the Node, pick the runtime (which needs
//! the pod CIDR the API server allocated), start the service proxy and the
//! routes to other nodes' pods, the Ingress controller and the service
//! load balancer (when configured), heartbeat the Lease, keep
//! node conditions current, watch the pods bound to the node, reconcile
//! them, clean up containers of pods that are gone, reclaim the node's
//! local-path volumes, collect unused images, sample resource usage, and
//! serve logs, exec and the usage figures over HTTPS.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use reconcilers::runtime::watcher::Config as WatchConfig;
use reconcilers::runtime::{Client, Controller, ControllerMetrics, Informer, ObjectRef};
use tokio::sync::broadcast::error::RecvError;

use crate::config::NodeConfig;
use crate::pods::downward::Facts;
use crate::pods::{PodContext, reconcile};
use crate::registration::{self, NodeFacts, Registered};
use crate::runtime::Runtime;
use crate::server;

/// Makes the runtime once the node is registered (it may need the pod CIDR).
pub type RuntimeFactory = Box<
    dyn FnOnce(Registered) -> Pin<Box<dyn Future<Output = Result<Arc<dyn Runtime>, String>> + Send>>
        + Send,
>;

/// What a daemon needs to run.
pub struct Daemon {
    /// The API client, with the node's identity.
    pub client: Client,
    /// The cluster CA (PEM) from the kubeconfig: callers of the endpoint must hold a certificate it signed.
    pub ca_pem: Option<String>,
    /// Settings.
    pub config: NodeConfig,
    /// Makes the runtime.
    pub runtime: RuntimeFactory,
    /// Shared controller metrics (one set for all simulated nodes of a process).
    pub metrics: Arc<ControllerMetrics>,
    /// Whether to write volumes and resolve env (false for simulated nodes).
    pub materialize: bool,
}

/// The API server's host and port from the node's own server URL: where
/// pods reach it on a node without the service proxy (no cluster IPs).
fn api_endpoint(base_url: &str) -> Option<(String, u16)> {
    let url = reqwest::Url::parse(base_url).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some((host.to_string(), url.port_or_known_default()?))
}

/// Removes the containers of pods that no longer exist (after a restart, or a missed delete).
pub async fn cleanup_orphans(ctx: &PodContext) {
    let live: std::collections::HashSet<String> = ctx
        .cache
        .all()
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    let Ok(all) = ctx.runtime.list().await else {
        return;
    };
    let mut orphans: Vec<String> = all
        .iter()
        .map(|c| c.pod_uid.clone())
        .filter(|u| !live.contains(u))
        .collect();
    orphans.sort();
    orphans.dedup();
    for uid in orphans {
        tracing::info!(pod_uid = %uid, "removing containers of a pod that no longer exists");
        ctx.probes.stop_pod(&uid);
        let infos = ctx.runtime.list_pod(&uid).await.unwrap_or_default();
        for c in &infos {
            if c.is_running() {
                let _ = ctx
                    .runtime
                    .stop(&c.id, std::time::Duration::from_secs(2))
                    .await;
            }
            let _ = ctx.runtime.remove(&c.id).await;
        }
        let _ = ctx.runtime.remove_sandbox(&uid).await;
        if ctx.materialize {
            let _ = std::fs::remove_dir_all(ctx.pod_dir(&uid));
        }
    }
}

impl Daemon {
    /// Runs until `shutdown` resolves. Containers keep running when the daemon stops
    /// (a restarted daemon adopts them), as with the kubelet.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), String> {
        let Daemon {
            client,
            ca_pem,
            config,
            runtime,
            metrics,
            materialize,
        } = self;
        let config = Arc::new(config);
        let host_ip = config
            .node_ip
            .or_else(|| crate::machine::address_towards(client.base_url()))
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
        let endpoint = match (&config.listen, &ca_pem) {
            (Some(addr), Some(ca)) => {
                let ep = server::bind(*addr)?;
                let mut sans = vec![
                    config.name.clone(),
                    host_ip.clone(),
                    "localhost".into(),
                    "127.0.0.1".into(),
                ];
                sans.dedup();
                let cert = server::tls::load_or_create(&config.data_dir.join("pki"), &sans)?;
                let tls = server::tls::server_config(&cert, ca)?;
                Some((ep, tls, cert.sha256))
            }
            (Some(_), None) => {
                tracing::warn!("the kubeconfig names no CA: the logs/exec endpoint is disabled");
                None
            }
            _ => None,
        };
        // simulated nodes without an endpoint of their own publish the shared one
        let shared = config.shared_stats.clone().filter(|_| endpoint.is_none());
        let mut facts = NodeFacts {
            host_ip: host_ip.clone(),
            port: endpoint
                .as_ref()
                .map(|e| e.0.addr.port())
                .or(shared.as_ref().map(|s| s.port))
                .unwrap_or(0),
            runtime_version: String::new(),
            cert_sha256: endpoint
                .as_ref()
                .map(|e| e.2.clone())
                .or(shared.as_ref().map(|s| s.cert_sha256.clone())),
            stats_path: shared
                .as_ref()
                .map(|_| server::stats::summary_path(&config.name)),
        };
        let registered = registration::register(&client, &config, &facts).await?;
        let runtime = runtime(registered.clone()).await?;
        // networking: the service proxy, routes to other nodes' pods, the pods' DNS
        if let Some(mut proxy) = config.proxy.clone() {
            if proxy.rules.local_pod_cidr.is_none() {
                proxy.rules.local_pod_cidr = registered
                    .pod_cidr
                    .as_deref()
                    .and_then(crate::proxy::model::Cidr::parse);
            }
            tasks.push(tokio::spawn(crate::proxy::run(client.clone(), proxy)));
        }
        if let Some(ingress) = config.ingress.clone() {
            let ingress_client = match &ingress.kubeconfig {
                Some(path) => Client::from_kubeconfig(Some(path), "korral-ingress")
                    .map_err(|e| format!("ingress: {e}"))?,
                None => client.clone(),
            };
            // a port taken (another node on this machine) leaves the node without the controller
            match crate::ingress::bind(&ingress).await {
                Ok(listeners) => tasks.extend(crate::ingress::start(
                    ingress_client,
                    ingress,
                    listeners,
                    host_ip.clone(),
                )?),
                Err(e) => tracing::warn!(error = %e, "the Ingress controller is not running"),
            }
        }
        if let Some(lb) = config.service_lb.clone() {
            let lb_client = match &lb.kubeconfig {
                Some(path) => Client::from_kubeconfig(Some(path), "korral-service-lb")
                    .map_err(|e| format!("service load balancer: {e}"))?,
                None => client.clone(),
            };
            tasks.extend(crate::servicelb::start(lb_client, lb, host_ip.clone()));
        }
        if config.pod_routes {
            let resync = config.timings.pod_sync * 3;
            tasks.push(tokio::spawn(crate::routes::run(
                client.clone(),
                config.name.clone(),
                resync,
            )));
        }
        let dns = match materialize {
            true => {
                crate::pods::dns::discover(&client, config.cluster_dns, &config.cluster_domain)
                    .await
            }
            false => None,
        };
        facts.runtime_version = runtime.version().await;
        tasks.push(tokio::spawn(registration::status_loop(
            client.clone(),
            config.clone(),
            facts,
        )));
        tasks.push(tokio::spawn(crate::lease::heartbeat(
            client.clone(),
            config.name.clone(),
            config.timings.heartbeat,
            config.timings.lease_duration,
        )));
        let informer = Informer::start(
            client.api::<Pod>(None),
            WatchConfig {
                field_selector: Some(format!("spec.nodeName={}", config.name)),
                ..Default::default()
            },
            Vec::new(),
        );
        let mut pod_context = PodContext::new(
            config.name.clone(),
            client.clone(),
            informer.cache(),
            runtime.clone(),
            config.timings.clone(),
            config.data_dir.clone(),
            Facts {
                pod_ip: None,
                host_ip,
                node_cpu_millis: registered.cpu_millis,
                node_memory_bytes: registered.memory_bytes,
            },
            materialize,
        );
        pod_context.dns = dns;
        if config.proxy.is_none() {
            pod_context.api_endpoint = api_endpoint(client.base_url());
        }
        let ctx = Arc::new(pod_context);
        let controller = Controller::new("node-pods", &informer).workers(config.workers);
        let queue = controller.queue();
        let _ = ctx.queue.set(queue.clone());
        {
            let (ctx, mut events, cache) = (ctx.clone(), runtime.events(), informer.cache());
            tasks.push(tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(uid) => ctx.poke_uid(&uid),
                        Err(RecvError::Lagged(_)) => {
                            for p in cache.all() {
                                queue.add(ObjectRef::of(p.as_ref()));
                            }
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            }));
        }
        {
            let ctx = ctx.clone();
            let period = config.timings.pod_sync * 6;
            tasks.push(tokio::spawn(async move {
                ctx.cache.wait_synced().await;
                loop {
                    cleanup_orphans(&ctx).await;
                    tokio::time::sleep(period).await;
                }
            }));
        }
        if materialize {
            tasks.push(tokio::spawn(crate::storage::reclaim_loop(
                client.clone(),
                config.name.clone(),
                crate::storage::local_path_root(&config.data_dir),
            )));
        }
        if runtime.has_images() {
            let recorder = reconcilers::controllers::recorder::Recorder::new(
                client.clone(),
                "kubelet",
                &config.name,
            );
            let gc = crate::pods::image_gc::ImageGc::new(
                runtime.clone(),
                config.image_gc.clone(),
                recorder,
                &config.name,
            );
            tasks.push(tokio::spawn(gc.run()));
        }
        let stats = crate::stats::Stats::new(ctx.clone(), config.timings.housekeeping);
        tasks.push(tokio::spawn(stats.clone().run()));
        if let Some(s) = &shared {
            s.directory.insert(&config.name, stats.clone());
        }
        if let Some((ep, tls, _)) = endpoint {
            tracing::info!(node = %config.name, addr = %ep.addr, "serving logs over HTTPS");
            let routes =
                server::router(ctx.clone()).merge(server::stats::routes(stats, metrics.clone()));
            tasks.push(tokio::spawn(ep.serve(tls, routes)));
        }
        tracing::info!(node = %config.name, runtime = runtime.kind(), "node daemon running");
        let rctx = ctx.clone();
        controller
            .run(move |key| reconcile(rctx.clone(), key), metrics, shutdown)
            .await;
        informer.stop();
        if let Some(s) = &shared {
            s.directory.remove(&config.name);
        }
        for t in tasks {
            t.abort();
        }
        Ok(())
    }
}
