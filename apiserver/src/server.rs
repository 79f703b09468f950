//! Starting the API server: data directory (CA, certificates, tokens,
//! kubeconfigs), the store (embedded by default, etcd when asked), the system
//! namespaces, and the HTTPS listener (plus an optional loopback HTTP one).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::auth::{Role, TokenFile};
use crate::errors::ApiError;
use crate::http::App;
use crate::metrics::{MeteredStore, Metrics};
use crate::registry::{Registry, WriteOptions};
use crate::store::{EtcdOptions, EtcdStore, LocalOptions, LocalStore, Store};

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// HTTPS address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Where the CA, certificates, tokens, kubeconfigs and the embedded store live.
    pub data_dir: PathBuf,
    /// Use etcd instead of the embedded store.
    pub etcd: Option<EtcdOptions>,
    /// A plain-HTTP listener, loopback only (tokens are still required).
    pub insecure_listen: Option<SocketAddr>,
    /// Extra names and IPs for the serving certificate.
    pub extra_sans: Vec<String>,
    /// The address published in the `kubernetes` Service's Endpoints, where
    /// pods reach the API server (kube-apiserver's `--advertise-address`);
    /// `None`: see [`advertise_address`].
    pub advertise_address: Option<IpAddr>,
    /// The service and cluster (pod) CIDRs IPAM allocates from.
    pub ipam: crate::ipam::IpamConfig,
    /// kube-apiserver's `WatchList` feature gate: watches with
    /// `sendInitialEvents`. Off by default, as in Kubernetes 1.33.
    pub watch_list: bool,
    /// The audit policy and log (`--audit-policy-file`, `--audit-log-path`).
    pub audit: Option<(PathBuf, PathBuf)>,
    /// Admission plugins turned off (`--disable-admission-plugins`).
    pub disabled_admission_plugins: Vec<String>,
    /// Requests without credentials are `system:anonymous` (`--anonymous-auth`).
    pub anonymous_auth: bool,
    /// Serve lists, `resourceVersion=0` gets and watches from the watch
    /// cache (kube-apiserver's `--watch-cache`, on by default).
    pub watch_cache: bool,
    /// Where snapshots are kept (default `data_dir/snapshots`).
    pub snapshot_dir: Option<PathBuf>,
    /// Scheduled snapshots with retention (`None`: only on demand).
    pub snapshot_schedule: Option<crate::snapshots::schedule::Policy>,
    /// Gzip-compress snapshots unless a request says otherwise.
    pub snapshot_compress: bool,
}

impl ServerConfig {
    /// Defaults: `127.0.0.1:6443`, embedded store in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 6443)),
            data_dir: data_dir.into(),
            etcd: None,
            insecure_listen: None,
            extra_sans: Vec::new(),
            advertise_address: None,
            ipam: crate::ipam::IpamConfig::default(),
            watch_list: false,
            audit: None,
            disabled_admission_plugins: Vec::new(),
            anonymous_auth: true,
            watch_cache: true,
            snapshot_dir: None,
            snapshot_schedule: None,
            snapshot_compress: false,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Certificates or tokens.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The store.
    #[error("the cluster store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Listening.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A running server.
pub struct RunningServer {
    /// `https://host:port`.
    pub url: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The shared state (registry, tokens, metrics).
    pub app: Arc<App>,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The in-server tasks (CRD controller, RBAC, policy and webhook
    /// caches, quota status), stopped with the server.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting requests, lets open ones finish (up to 5 s), and returns.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        let _ = self.task.await;
        for task in &self.background {
            task.abort();
        }
    }

    /// Waits until the server stops on its own (a listener error).
    pub async fn wait(self) -> Result<(), ServerError> {
        let result = self.task.await;
        for task in &self.background {
            task.abort();
        }
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServerError::Other(format!(
                "the HTTPS listener failed: {e}"
            ))),
            Err(e) => Err(ServerError::Other(format!(
                "the HTTPS listener panicked: {e}"
            ))),
        }
    }
}

async fn open_store(config: &ServerConfig) -> Result<Arc<dyn Store>, ServerError> {
    match &config.etcd {
        Some(opts) => {
            tracing::info!(endpoints = ?opts.endpoints, "using etcd");
            Ok(Arc::new(EtcdStore::connect(opts.clone()).await?))
        }
        None => {
            let path = config.data_dir.join("store.redb");
            tracing::info!(path = %path.display(), "using the embedded store");
            Ok(Arc::new(LocalStore::open(LocalOptions::new(path)).await?))
        }
    }
}

/// The namespaces every cluster has.
/// Concurrent HTTP/2 streams per client connection (kube-apiserver's default).
pub const HTTP2_MAX_STREAMS: u32 = 1000;

const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The address the API server publishes to the cluster when none is given,
/// as kube-apiserver chooses it: the listen address, or for a wildcard
/// listener the address of the interface the default route leaves by (a
/// connected UDP socket: the kernel picks the source, nothing is sent);
/// loopback when there is no default route.
pub fn advertise_address(listen: IpAddr) -> IpAddr {
    if !listen.is_unspecified() {
        return listen;
    }
    // TEST-NET-3 (RFC 5737): routed by the default route, never answered
    let probe = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((Ipv4Addr::new(203, 0, 113, 1), 9)).map(|()| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(addr) if !addr.ip().is_unspecified() => addr.ip(),
        _ => {
            tracing::warn!(
                "no default route: the kubernetes Service points at 127.0.0.1, which pods in their own network namespaces cannot reach (set --advertise-address)"
            );
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }
}

/// The objects every cluster starts with; `advertised` is where pods reach the API server.
async fn bootstrap(registry: &Registry, advertised: SocketAddr) -> Result<(), ServerError> {
    let ns = schemas::lookup("v1", "Namespace").map_err(|e| ServerError::Other(e.to_string()))?;
    for name in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match registry
            .create(ns, None, obj, &WriteOptions::default(), |_| Ok(()))
            .await
        {
            Ok(_) => tracing::info!(namespace = name, "created system namespace"),
            Err(e) if e.code == 409 => {}
            Err(e) => {
                return Err(ServerError::Other(format!(
                    "cannot create namespace {name}: {}",
                    e.message
                )));
            }
        }
    }
    let pc = schemas::lookup("scheduling.k8s.io/v1", "PriorityClass")
        .map_err(|e| ServerError::Other(e.to_string()))?;
    for (name, value, description) in crate::admission::priority::SYSTEM_CLASSES {
        let obj = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description});
        match registry
            .create(pc, None, obj, &WriteOptions::default(), |_| Ok(()))
            .await
        {
            Ok(_) | Err(ApiError { code: 409, .. }) => {}
            Err(e) => {
                return Err(ServerError::Other(format!(
                    "cannot create PriorityClass {name}: {}",
                    e.message
                )));
            }
        }
    }
    for (kind, objects) in [
        ("ClusterRole", crate::rbac::bootstrap::cluster_roles()),
        (
            "ClusterRoleBinding",
            crate::rbac::bootstrap::cluster_role_bindings(),
        ),
    ] {
        let info = schemas::lookup("rbac.authorization.k8s.io/v1", kind)
            .map_err(|e| ServerError::Other(e.to_string()))?;
        for obj in objects {
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            match registry
                .create(info, None, obj, &WriteOptions::default(), |_| Ok(()))
                .await
            {
                Ok(_) | Err(ApiError { code: 409, .. }) => {}
                Err(e) => {
                    return Err(ServerError::Other(format!(
                        "cannot create {kind} {name}: {}",
                        e.message
                    )));
                }
            }
        }
    }
    kubernetes_service(registry, advertised).await
}

/// The `kubernetes` Service, Endpoints and EndpointSlice in `default`: the
/// API server's address inside the cluster (the first service IP) in front
/// of its advertised address and port, kept current on restart. The slice is
/// kube-apiserver's (named `kubernetes`, labelled with the service name
/// only: no controller manages it).
async fn kubernetes_service(
    registry: &Registry,
    advertised: SocketAddr,
) -> Result<(), ServerError> {
    let lookup = |v, k| schemas::lookup(v, k).map_err(|e| ServerError::Other(e.to_string()));
    let (svc, ep) = (lookup("v1", "Service")?, lookup("v1", "Endpoints")?);
    let slice_info = lookup("discovery.k8s.io/v1", "EndpointSlice")?;
    let ip = registry.ipam().first_service_ip().to_string();
    let host = advertised.ip().to_string();
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": advertised.port()}]}});
    let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes"},
        "subsets": [{"addresses": [{"ip": host}], "ports": [{"name": "https", "port": advertised.port(), "protocol": "TCP"}]}]});
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if advertised.is_ipv6() { "IPv6" } else { "IPv4" },
        "endpoints": [{"addresses": [host], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": advertised.port(), "protocol": "TCP"}]});
    for (info, obj) in [(svc, service), (ep, endpoints), (slice_info, slice)] {
        let opts = WriteOptions::default();
        match registry
            .create(info, Some("default"), obj.clone(), &opts, |_| Ok(()))
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 409 => {
                let fields: &[&str] = match info.kind.as_str() {
                    "Endpoints" => &["/subsets"],
                    "EndpointSlice" => &["/endpoints", "/ports"],
                    _ => &["/spec/ports"],
                };
                let refresh = |old: &serde_json::Value| {
                    let mut new = old.clone();
                    for field in fields {
                        if let (Some(slot), Some(v)) = (new.pointer_mut(field), obj.pointer(field))
                        {
                            *slot = v.clone();
                        }
                    }
                    Ok(new)
                };
                let result = registry
                    .update_with(
                        info,
                        Some("default"),
                        "kubernetes",
                        None,
                        &opts,
                        None,
                        refresh,
                        |_, _| Ok(()),
                    )
                    .await;
                if let Err(e) = result {
                    tracing::warn!(kind = info.kind, error = %e.message, "cannot refresh the kubernetes service");
                }
            }
            Err(e) => {
                return Err(ServerError::Other(format!(
                    "cannot create the kubernetes {}: {}",
                    info.kind, e.message
                )));
            }
        }
    }
    Ok(())
}

fn client_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Starts the server and returns once it is listening.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(&config.data_dir).map_err(|source| crate::pki::PkiError::Io {
        path: config.data_dir.clone(),
        source,
    })?;
    // as kube-apiserver's: the certificate covers the advertised address and
    // the kubernetes Service's cluster IP, which in-cluster clients dial
    let advertise = config
        .advertise_address
        .unwrap_or_else(|| advertise_address(config.listen.ip()));
    let service_ip = config.ipam.first_service_ip();
    let mut sans = config.extra_sans.clone();
    for ip in [config.listen.ip(), advertise, IpAddr::V4(service_ip)] {
        if !ip.is_unspecified() {
            sans.push(ip.to_string());
        }
    }
    let pki = crate::pki::load_or_create(&config.data_dir.join("pki"), &sans)?;
    let tokens = TokenFile::load_or_create(&config.data_dir)?;
    let metrics = Arc::new(Metrics::default());
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(
        open_store(&config).await?,
        metrics.clone(),
    ));
    let mut registry = Registry::with_ipam(store, config.ipam.clone());
    if config.watch_cache {
        registry.enable_watch_cache(crate::cache::CacheConfig::default());
    }
    registry
        .disable_admission_plugins(&config.disabled_admission_plugins)
        .map_err(ServerError::Other)?;
    let std_listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let bound = std_listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    bootstrap(&registry, SocketAddr::new(advertise, bound.port())).await?;
    let crd_controller = crate::crds::CrdController::start(registry.clone())
        .await
        .map_err(|e| {
            ServerError::Other(format!(
                "cannot start the CustomResourceDefinition controller: {}",
                e.message
            ))
        })?;
    let sa_tokens = Arc::new(crate::serviceaccounts::TokenIssuer::load_or_create(
        &config.data_dir.join("pki"),
    )?);
    let rbac = Arc::new(crate::rbac::cache::new());
    let rbac_cache = rbac
        .start(registry.clone())
        .await
        .map_err(|e| ServerError::Other(format!("cannot read the RBAC objects: {}", e.message)))?;
    let audit = match &config.audit {
        Some((policy, log)) => Some(Arc::new(
            crate::audit::Audit::open(policy, log).map_err(ServerError::Other)?,
        )),
        None => None,
    };
    let quota_status = crate::admission::quota_status::start(registry.clone());
    let policies = Arc::new(crate::admission::policies::cache());
    let policy_cache = policies.start(registry.clone()).await.map_err(|e| {
        ServerError::Other(format!("cannot read the admission policies: {}", e.message))
    })?;
    let webhooks = Arc::new(crate::admission::webhooks::cache());
    let webhook_cache = webhooks.start(registry.clone()).await.map_err(|e| {
        ServerError::Other(format!(
            "cannot read the admission webhook configurations: {}",
            e.message
        ))
    })?;
    let host = client_host(bound);
    let url = format!("https://{host}");
    let snapshots = Arc::new(
        crate::snapshots::Snapshots::new(
            config
                .snapshot_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("snapshots")),
            registry.store().clone(),
        )
        .compressing(config.snapshot_compress),
    );
    let mut background = vec![
        crd_controller,
        rbac_cache,
        policy_cache,
        webhook_cache,
        quota_status,
    ];
    if let Some(policy) = &config.snapshot_schedule {
        background.push(crate::snapshots::schedule::start(
            snapshots.clone(),
            policy.clone(),
        ));
    }
    let app = Arc::new(App {
        registry,
        tokens,
        metrics,
        server_address: host,
        node_client: Some((
            pki.kubelet_client_cert_pem.clone(),
            pki.kubelet_client_key_pem.clone(),
        )),
        openapi: Default::default(),
        watch_list: config.watch_list,
        anonymous_auth: config.anonymous_auth,
        rbac,
        sa_tokens,
        policies,
        webhooks,
        audit,
        metrics_api: Default::default(),
        snapshots,
    });

    // the CA for joining nodes, verified by the hash in their join token
    if let Err(e) = crate::cluster_info::publish(&app.registry, &url, &pki.ca_cert_pem).await {
        tracing::warn!(error = %e.message, "cannot publish kube-public/cluster-info: nodes cannot join by token");
    }

    // kubeconfigs for the admin and for korral's own components
    let kubeconfig = config.data_dir.join("kubeconfig.yaml");
    for (file, role, user) in [
        ("kubeconfig.yaml", Role::Admin, "admin"),
        (
            "controller.kubeconfig",
            Role::Controller,
            "korral-controller",
        ),
        ("intake.kubeconfig", Role::Intake, "korral-intake"),
    ] {
        let token = match app.tokens.token_for_role(&role) {
            Some(t) => t,
            None => app.tokens.ensure(user, &role)?,
        };
        // the admin's kubeconfig carries a client certificate, as kubeadm's,
        // k3s's and kind's do (the admin token in tokens.csv works too)
        let credentials = if role == Role::Admin {
            crate::kubeconfig::Credentials::ClientCert {
                cert_pem: &pki.admin_cert_pem,
                key_pem: &pki.admin_key_pem,
            }
        } else {
            crate::kubeconfig::Credentials::Token(&token)
        };
        crate::kubeconfig::write_as(
            &config.data_dir.join(file),
            &url,
            &pki.ca_cert_pem,
            if role == Role::Admin {
                "korral-admin"
            } else {
                user
            },
            credentials,
        )?;
    }

    let tls = crate::tls::server_config(&pki)
        .map_err(|e| ServerError::Other(format!("TLS configuration: {e}")))?;
    let handle = axum_server::Handle::new();
    let router = crate::http::router(app.clone());
    let acceptor =
        crate::tls::ClientCertAcceptor(axum_server::tls_rustls::RustlsAcceptor::new(tls));
    let mut server = axum_server::from_tcp(std_listener)
        .map_err(|source| ServerError::Listen {
            addr: bound,
            source,
        })?
        .acceptor(acceptor)
        .handle(handle.clone());
    // kube-apiserver's --http2-max-streams-per-connection default: every watch holds a
    // stream, and a client over the limit (hyper's default is 200) waits for a free one
    server
        .http_builder()
        .http2()
        .max_concurrent_streams(HTTP2_MAX_STREAMS);
    let task = tokio::spawn(server.serve(router.clone().into_make_service()));

    if let Some(addr) = config.insecure_listen {
        if !addr.ip().is_loopback() {
            return Err(ServerError::Other(format!(
                "--insecure-port must listen on loopback, not {addr}"
            )));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        tracing::warn!(%addr, "serving plain HTTP on loopback (tokens still required)");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router.into_make_service()).await {
                tracing::error!(error = %e, "the plain-HTTP listener failed");
            }
        });
    }
    tracing::info!(%url, kubeconfig = %kubeconfig.display(), "API server listening");
    Ok(RunningServer {
        url,
        kubeconfig,
        app,
        handle,
        task,
        background,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_specific_listen_address_is_advertised_and_a_wildcard_never_is() {
        let ip: IpAddr = "10.250.7.1".parse().expect("ip");
        assert_eq!(advertise_address(ip), ip);
        assert_eq!(
            advertise_address(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert!(!advertise_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).is_unspecified());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_kubernetes_service_fronts_the_advertised_address_the_certificate_covers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::new(dir.path());
        config.listen = "127.0.0.1:0".parse().expect("address");
        config.advertise_address = Some("127.0.0.2".parse().expect("ip"));
        let server = start(config).await.expect("start");
        let port = server
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .expect("port");
        let registry = &server.app.registry;
        let info = |k| schemas::lookup("v1", k).expect("kind");
        let ep = registry
            .get(info("Endpoints"), Some("default"), "kubernetes")
            .await
            .expect("endpoints");
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.0.0.2");
        assert_eq!(ep["subsets"][0]["ports"][0]["port"], port);
        let slice_info = schemas::lookup("discovery.k8s.io/v1", "EndpointSlice").expect("kind");
        let slice = registry
            .get(slice_info, Some("default"), "kubernetes")
            .await
            .expect("endpointslice");
        assert_eq!(slice["endpoints"][0]["addresses"][0], "127.0.0.2");
        assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
        assert_eq!(slice["ports"][0]["port"], port);
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["metadata"]["labels"],
            json!({"kubernetes.io/service-name": "kubernetes"})
        );
        let svc = registry
            .get(info("Service"), Some("default"), "kubernetes")
            .await
            .expect("service");
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], port);
        // the serving certificate's names (pki.rs records them beside it)
        let sans = std::fs::read_to_string(dir.path().join("pki/server.sans")).expect("sans");
        let sans: Vec<&str> = sans.trim().split(',').collect();
        for want in [
            "127.0.0.1",
            "127.0.0.2",
            "10.96.0.1",
            "kubernetes.default.svc",
        ] {
            assert!(sans.contains(&want), "{want} in {sans:?}");
        }
        server.shutdown().await;
    }
}
