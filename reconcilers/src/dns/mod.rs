//! Cluster DNS, run by the control plane (CoreDNS's job in Kubernetes): a
//! UDP and TCP DNS server answering `<service>.<namespace>.svc.<domain>`
//! from informer caches of Services and Endpoints ([`answer`]), and the
//! `kube-system/kube-dns` Service whose Endpoints name this server
//! ([`service`]), so pods reach it through the service proxy at the
//! Service's cluster IP. Names outside the cluster domain are forwarded to
//! an upstream server when one is configured, else refused.

pub mod answer;
pub mod service;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::runtime::watcher::Config as WatchConfig;
use crate::runtime::{Cache, Client, Informer, ObjectRef};
use answer::{AnswerConfig, Directory, Outcome};

/// How the DNS server runs.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// UDP and TCP address (port 0 picks a free port; the Endpoints say which).
    pub listen: SocketAddr,
    /// The address the `kube-dns` Endpoints name (default: the listen IP).
    pub advertise: Option<Ipv4Addr>,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// The cluster IP the `kube-dns` Service asks for (kubeadm: the 10th of the service CIDR).
    pub service_ip: Option<Ipv4Addr>,
    /// Where names outside the cluster domain go (`None`: refused).
    pub upstream: Option<SocketAddr>,
    /// TTL of the answers.
    pub ttl: u32,
}

impl DnsConfig {
    /// Defaults for a server listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        DnsConfig {
            listen,
            advertise: None,
            domain: "cluster.local".into(),
            service_ip: None,
            upstream: None,
            ttl: 5,
        }
    }
}

/// A running DNS server; dropping it stops it.
pub struct RunningDns {
    /// The bound address (UDP and TCP).
    pub addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RunningDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Caches {
    services: Cache<Service>,
    endpoints: Cache<Endpoints>,
}

impl Directory for Caches {
    fn service(&self, ns: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(Some(ns), name))
    }
    fn endpoints(&self, ns: &str, name: &str) -> Option<Arc<Endpoints>> {
        self.endpoints.get(&ObjectRef::new(Some(ns), name))
    }
}

struct Shared {
    dir: Caches,
    answer: AnswerConfig,
    upstream: Option<SocketAddr>,
}

/// Binds UDP and TCP on the same port (retrying free ports when asked for port 0).
async fn bind(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), String> {
    let mut last = String::new();
    for _ in 0..20 {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|e| format!("DNS: cannot listen on udp {listen}: {e}"))?;
        let addr = udp.local_addr().map_err(|e| e.to_string())?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if listen.port() == 0 => last = e.to_string(),
            Err(e) => return Err(format!("DNS: cannot listen on tcp {addr}: {e}")),
        }
    }
    Err(format!(
        "DNS: no port free for both udp and tcp on {listen}: {last}"
    ))
}

/// Starts the server: binds, starts the informers, and keeps the
/// `kube-dns` Service and Endpoints current (in the background, retrying).
pub async fn start(client: Client, config: DnsConfig) -> Result<RunningDns, String> {
    let (udp, tcp) = bind(config.listen).await?;
    let addr = udp.local_addr().map_err(|e| e.to_string())?;
    let services = Informer::start(
        client.api::<Service>(None),
        WatchConfig::default(),
        Vec::new(),
    );
    let endpoints = Informer::start(
        client.api::<Endpoints>(None),
        WatchConfig::default(),
        Vec::new(),
    );
    let shared = Arc::new(Shared {
        dir: Caches {
            services: services.cache(),
            endpoints: endpoints.cache(),
        },
        answer: AnswerConfig {
            domain: config.domain.trim_end_matches('.').to_ascii_lowercase(),
            ttl: config.ttl,
            forward: config.upstream.is_some(),
        },
        upstream: config.upstream,
    });
    let advertise = match (config.advertise, addr.ip()) {
        (Some(ip), _) => ip,
        (None, IpAddr::V4(ip)) if !ip.is_unspecified() => ip,
        _ => Ipv4Addr::LOCALHOST,
    };
    let udp = Arc::new(udp);
    let mut tasks = vec![
        tokio::spawn(serve_udp(udp, shared.clone())),
        tokio::spawn(serve_tcp(tcp, shared)),
    ];
    let (service_ip, port) = (config.service_ip, addr.port());
    tasks.push(tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            let result = async {
                let ip = service::ensure_service(&client, service_ip).await?;
                service::publish(&client, advertise, port).await?;
                Ok::<String, String>(ip)
            }
            .await;
            match result {
                Ok(ip) => {
                    tracing::info!(service_ip = %ip, endpoint = %format!("{advertise}:{port}"), "cluster DNS published as kube-system/kube-dns");
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "cannot publish the kube-dns Service yet"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        // the informers live as long as the server
        std::future::pending::<()>().await;
        drop((services, endpoints));
    }));
    tracing::info!(%addr, "cluster DNS listening (udp, tcp)");
    Ok(RunningDns { addr, tasks })
}

/// The reply bytes for one query, or `None` to stay silent (undecodable input).
async fn respond(query: &[u8], shared: &Shared, max: Option<usize>) -> Option<Vec<u8>> {
    let request = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) if query.len() >= 2 => {
            let id = u16::from_be_bytes([query[0], query[1]]);
            let m = Message::error_msg(id, hickory_proto::op::OpCode::Query, ResponseCode::FormErr);
            return m.to_vec().ok();
        }
        Err(_) => return None,
    };
    match answer::answer(&request, &shared.dir, &shared.answer) {
        Outcome::Reply(reply) => {
            let bytes = reply.to_vec().ok()?;
            let limit = max.map(|m| m.max(usize::from(request.max_payload())));
            match limit {
                Some(l) if bytes.len() > l => reply.truncate().to_vec().ok(),
                _ => Some(bytes),
            }
        }
        Outcome::Forward => match shared.upstream {
            Some(up) => match forward(up, query).await {
                Some(bytes) => Some(bytes),
                None => {
                    let mut m = Message::error_msg(
                        request.metadata.id,
                        request.metadata.op_code,
                        ResponseCode::ServFail,
                    );
                    m.add_queries(request.queries.iter().cloned());
                    m.to_vec().ok()
                }
            },
            None => None,
        },
    }
}

/// Relays a query to the upstream server over UDP (2 s).
async fn forward(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        "[::]:0".parse().ok()?
    };
    let sock = UdpSocket::bind(local).await.ok()?;
    sock.send_to(query, upstream).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

async fn serve_udp(sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "DNS: udp receive failed");
                continue;
            }
        };
        let query = buf[..n].to_vec();
        let (sock, shared) = (sock.clone(), shared.clone());
        // answers from the caches are immediate; forwarded ones wait on the upstream
        tokio::spawn(async move {
            if let Some(reply) = respond(&query, &shared, Some(512)).await {
                let _ = sock.send_to(&reply, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(tcp_connection(stream, shared.clone()));
    }
}

/// One TCP connection: length-prefixed queries until idle for 10 s.
async fn tcp_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    loop {
        let mut len = [0u8; 2];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut len)).await;
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(reply) = respond(&query, &shared, None).await else {
            return;
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        let mut out = n.to_be_bytes().to_vec();
        out.extend_from_slice(&reply);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}
