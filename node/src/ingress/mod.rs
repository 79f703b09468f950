//! The built-in Ingress controller (like k3s's bundled Traefik, but in the
//! node daemon): serves networking.k8s.io/v1 Ingresses of the `korral`
//! IngressClass (controller `korral.dev/ingress`, created at start when
//! missing, the default class when no other is) with a reverse proxy on
//! the node's HTTP and HTTPS ports, and writes the node's address into
//! their `status.loadBalancer.ingress`.
//!
//! [`routes`] turns the cached Ingresses, IngressClasses, Services,
//! Endpoints and TLS Secrets into a routing table (pure, unit-tested);
//! [`proxy`] serves HTTP/1.1 and HTTP/2 (ALPN on TLS, prior knowledge in
//! clear) with upgrades, round-robin over ready endpoints; [`tls`] picks
//! each connection's certificate by SNI. The table is rebuilt after every
//! change to any of them and swapped in whole.

pub mod proxy;
pub mod routes;
pub mod tls;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{Endpoints, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use reconcilers::runtime::watcher::Config as WatchConfig;
use reconcilers::runtime::{Client, Informer, ListParams, Patch, WriteParams};
use schemas::Object;
use serde_json::json;

use routes::Table;

/// How the Ingress controller runs.
#[derive(Clone, Debug, Default)]
pub struct IngressConfig {
    /// Where plain HTTP is served (`None`: not at all).
    pub http_listen: Option<SocketAddr>,
    /// Where HTTPS is served (`None`: not at all).
    pub https_listen: Option<SocketAddr>,
    /// The identity it runs as (default: the node's, which may read Ingresses
    /// but not Secrets: TLS then needs an identity that may read them).
    pub kubeconfig: Option<PathBuf>,
    /// The address written into Ingresses' status (default: the node's address).
    pub address: Option<String>,
}

/// Reads a `--ingress-*-listen` value: `off` (or empty) for none, an
/// address, or when not given `default` if the process is root (ports 80
/// and 443 need it), else none.
pub fn listen_arg(value: Option<&str>, default: SocketAddr) -> Result<Option<SocketAddr>, String> {
    match value.map(str::trim) {
        Some("off" | "") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|e| format!("ingress listen address {v:?}: {e}")),
        // SAFETY: geteuid has no preconditions.
        None => Ok((unsafe { libc::geteuid() } == 0).then_some(default)),
    }
}

/// The current routing table, shared by the listeners.
#[derive(Clone, Debug, Default)]
pub struct Shared(Arc<RwLock<Arc<Table>>>);

impl Shared {
    /// The table now.
    pub fn table(&self) -> Arc<Table> {
        match self.0.read() {
            Ok(t) => t.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    /// Swaps in a new table.
    pub fn set(&self, table: Table) {
        match self.0.write() {
            Ok(mut t) => *t = Arc::new(table),
            Err(e) => *e.into_inner() = Arc::new(table),
        }
    }
}

/// The listeners, bound: what [`start`] serves.
pub struct Listeners {
    /// Plain HTTP.
    pub http: Option<tokio::net::TcpListener>,
    /// HTTPS.
    pub https: Option<tokio::net::TcpListener>,
}

/// Binds the configured addresses.
pub async fn bind(config: &IngressConfig) -> Result<Listeners, String> {
    let bind = |addr: Option<SocketAddr>| async move {
        match addr {
            Some(a) => tokio::net::TcpListener::bind(a)
                .await
                .map(Some)
                .map_err(|e| format!("ingress: cannot listen on {a}: {e}")),
            None => Ok(None),
        }
    };
    Ok(Listeners {
        http: bind(config.http_listen).await?,
        https: bind(config.https_listen).await?,
    })
}

/// The IngressClass korral serves.
pub fn korral_class(default: bool) -> IngressClass {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": routes::CLASS, "annotations": {routes::ANN_DEFAULT_CLASS: default.to_string()}},
        "spec": {"controller": routes::CONTROLLER},
    }))
    .unwrap_or_default()
}

const MANAGER: &str = "korral-ingress";

/// Creates the `korral` IngressClass when missing; the default class unless another is.
pub async fn ensure_class(client: &Client) {
    let api = client.api::<IngressClass>(None);
    let classes = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(error = %e, "ingress: cannot list IngressClasses");
            return;
        }
    };
    if classes
        .iter()
        .any(|c| c.metadata.name.as_deref() == Some(routes::CLASS))
    {
        return;
    }
    let other_default =
        routes::default_class(&classes.into_iter().map(Arc::new).collect::<Vec<_>>()).is_some();
    let wp = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    match api.create(&korral_class(!other_default), &wp).await {
        Ok(_) => tracing::info!(class = routes::CLASS, "created the IngressClass"),
        Err(e) if e.is_already_exists() => {}
        Err(e) => tracing::warn!(error = %e, "ingress: cannot create the korral IngressClass"),
    }
}

/// Starts the listeners' servers and the loop keeping the table and the
/// Ingresses' status current; `address` is the node's address.
pub fn start(
    client: Client,
    config: IngressConfig,
    listeners: Listeners,
    address: String,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let shared = Shared::default();
    let proxy = proxy::Proxy::new(shared.clone());
    let mut tasks = Vec::new();
    if let Some(l) = listeners.http {
        tracing::info!(addr = ?l.local_addr().ok(), "ingress: serving HTTP");
        tasks.push(tokio::spawn(proxy.clone().serve(l, None)));
    }
    if let Some(l) = listeners.https {
        tracing::info!(addr = ?l.local_addr().ok(), "ingress: serving HTTPS");
        let tls = tls::server_config(shared.clone())?;
        tasks.push(tokio::spawn(proxy.serve(l, Some(tls))));
    }
    let secrets = config.kubeconfig.is_some();
    let address = config.address.clone().unwrap_or(address);
    tasks.push(tokio::spawn(sync_loop(client, shared, address, secrets)));
    Ok(tasks)
}

/// An informer over every namespace (shared with the service load balancer).
pub(crate) fn watch_all<K: Object>(client: &Client, field_selector: Option<&str>) -> Informer<K> {
    let config = WatchConfig {
        field_selector: field_selector.map(str::to_string),
        ..Default::default()
    };
    Informer::start(client.api::<K>(None), config, Vec::new())
}

/// Rebuilds the table after every change and writes the Ingresses' status.
async fn sync_loop(client: Client, shared: Shared, address: String, secrets: bool) {
    ensure_class(&client).await;
    let ingresses = watch_all::<Ingress>(&client, None);
    let classes = watch_all::<IngressClass>(&client, None);
    let services = watch_all::<Service>(&client, None);
    let endpoints = watch_all::<Endpoints>(&client, None);
    let tls = secrets.then(|| watch_all::<Secret>(&client, Some("type=kubernetes.io/tls")));
    let (mut i_rx, mut c_rx, mut s_rx, mut e_rx) = (
        ingresses.subscribe(),
        classes.subscribe(),
        services.subscribe(),
        endpoints.subscribe(),
    );
    let mut t_rx = tls.as_ref().map(|t| t.subscribe());
    ingresses.cache().wait_synced().await;
    classes.cache().wait_synced().await;
    services.cache().wait_synced().await;
    endpoints.cache().wait_synced().await;
    if let Some(t) = &tls {
        t.cache().wait_synced().await;
    }
    let wp = WriteParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let mut warned = BTreeSet::new();
    loop {
        let all_ingresses = ingresses.cache().all();
        let table = routes::build(
            &all_ingresses,
            &classes.cache().all(),
            &services.cache().all(),
            &endpoints.cache().all(),
            &tls.as_ref().map(|t| t.cache().all()).unwrap_or_default(),
        );
        let now: BTreeSet<String> = table.warnings.iter().cloned().collect();
        for w in now.difference(&warned) {
            tracing::warn!("ingress: {w}");
        }
        warned = now;
        let served = table.ingresses.clone();
        shared.set(table);
        for (ns, name) in served {
            let Some(ing) = all_ingresses.iter().find(|i| {
                i.metadata.namespace.as_deref() == Some(ns.as_str())
                    && i.metadata.name.as_deref() == Some(name.as_str())
            }) else {
                continue;
            };
            if let Some(patch) = routes::status_with(ing, &address)
                && let Err(e) = client
                    .api::<Ingress>(Some(&ns))
                    .patch_status(&name, &Patch::Merge(patch), &wp)
                    .await
            {
                tracing::warn!(ingress = %format!("{ns}/{name}"), error = %e, "ingress: cannot write the status");
            }
        }
        let changed = async {
            match t_rx.as_mut() {
                Some(rx) => {
                    let _ = rx.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        // a periodic pass retries status writes that failed
        tokio::select! {
            _ = i_rx.recv() => {}
            _ = c_rx.recv() => {}
            _ = s_rx.recv() => {}
            _ = e_rx.recv() => {}
            _ = changed => {}
            _ = tokio::time::sleep(crate::proxy::RETRY_PASS) => {}
        }
        crate::proxy::drain(&mut i_rx);
        crate::proxy::drain(&mut c_rx);
        crate::proxy::drain(&mut s_rx);
        crate::proxy::drain(&mut e_rx);
        if let Some(rx) = t_rx.as_mut() {
            crate::proxy::drain(rx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_values() {
        let d = SocketAddr::from(([0, 0, 0, 0], 80));
        assert_eq!(listen_arg(Some("off"), d), Ok(None));
        assert_eq!(
            listen_arg(Some("127.0.0.1:8080"), d),
            Ok(Some(SocketAddr::from(([127, 0, 0, 1], 8080))))
        );
        assert!(listen_arg(Some("nowhere"), d).is_err());
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert_eq!(listen_arg(None, d), Ok(root.then_some(d)));
    }
}
