//! The Ingress controller's routing table: a pure function of the
//! Ingresses, IngressClasses, Services, Endpoints and TLS Secrets in the
//! caches. Which Ingresses are ours (the class's controller is
//! `korral.dev/ingress`, or no class and ours is the default), host rules
//! (exact, then `*.` wildcards of one label, then rules without a host),
//! paths by kube's precedence (longest first, Exact before Prefix at equal
//! length, Prefix element-wise, ImplementationSpecific as Prefix), default
//! backends, backends resolved to ready endpoint addresses, certificates
//! by host.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::{Endpoints, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use schemas::MetaExt;

/// The controller name an IngressClass names for korral's Ingress controller.
pub const CONTROLLER: &str = "korral.dev/ingress";
/// The IngressClass korral creates.
pub const CLASS: &str = "korral";
/// The annotation marking the default IngressClass.
pub const ANN_DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
/// The deprecated class annotation (still honoured by ingress-nginx).
pub const ANN_LEGACY_CLASS: &str = "kubernetes.io/ingress.class";

/// One Service port's ready endpoints, taken in turn.
#[derive(Debug)]
pub struct Upstream {
    /// `namespace/service:port`, for messages.
    pub name: String,
    /// Ready addresses (empty: answer 503).
    pub addrs: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Upstream {
    fn new(name: String, addrs: Vec<SocketAddr>) -> Upstream {
        Upstream {
            name,
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    /// The next ready address (round-robin), `None` without any.
    pub fn pick(&self) -> Option<SocketAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.addrs[i % self.addrs.len()])
    }
}

/// How a path matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// The whole path, character for character.
    Exact,
    /// Element-wise prefix of the `/`-separated path (also ImplementationSpecific).
    Prefix,
}

#[derive(Debug)]
struct PathRule {
    kind: PathKind,
    /// The path without a trailing `/` for prefixes (`""` for `/`).
    path: String,
    backend: Arc<Upstream>,
}

impl PathRule {
    fn matches(&self, req: &str) -> bool {
        match self.kind {
            PathKind::Exact => req == self.path,
            PathKind::Prefix => {
                self.path.is_empty()
                    || req
                        .strip_prefix(self.path.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

/// The paths of one host (or of the rules without a host).
#[derive(Debug, Default)]
struct HostRules {
    paths: Vec<PathRule>,
    /// The defaultBackend of the first Ingress naming this host with one.
    default_backend: Option<Arc<Upstream>>,
}

impl HostRules {
    fn add(&mut self, rule: PathRule) -> bool {
        if self
            .paths
            .iter()
            .any(|p| p.kind == rule.kind && p.path == rule.path)
        {
            return false;
        }
        self.paths.push(rule);
        true
    }

    /// kube's precedence: the longest matching path; Exact before Prefix at equal length.
    fn best(&self, path: &str) -> Option<&Arc<Upstream>> {
        self.paths
            .iter()
            .filter(|r| r.matches(path))
            .max_by_key(|r| (r.path.len(), r.kind == PathKind::Exact))
            .map(|r| &r.backend)
    }
}

/// Where a request goes.
#[derive(Debug)]
pub enum Route {
    /// To this Service port's endpoints.
    Backend(Arc<Upstream>),
    /// No rule and no default backend: 404.
    NotFound,
}

/// Everything the proxy needs, rebuilt on every change.
#[derive(Debug, Default)]
pub struct Table {
    exact: HashMap<String, HostRules>,
    wildcard: HashMap<String, HostRules>,
    any: HostRules,
    default_backend: Option<Arc<Upstream>>,
    certs: HashMap<String, Arc<CertifiedKey>>,
    wildcard_certs: HashMap<String, Arc<CertifiedKey>>,
    /// The Ingresses this controller serves (`namespace/name`), oldest first.
    pub ingresses: Vec<(String, String)>,
    /// Problems worth a log line (missing Services or Secrets, conflicts).
    pub warnings: Vec<String>,
}

/// The host part of a `Host` header or authority, lowercased, without port or trailing dot.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match h.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => h,
        }
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

impl Table {
    /// The route for a request to `host` (a Host header or SNI name) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Route {
        let host = normalize_host(host);
        let rules = self.exact.get(&host).or_else(|| {
            host.split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
        });
        let rules = rules.unwrap_or(&self.any);
        let found = rules
            .best(path)
            .or(rules.default_backend.as_ref())
            .or(self.default_backend.as_ref());
        match found {
            Some(u) => Route::Backend(u.clone()),
            None => Route::NotFound,
        }
    }

    /// The certificate for an SNI name: exact host, then a wildcard of one label.
    pub fn cert(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let host = normalize_host(sni);
        self.certs.get(&host).cloned().or_else(|| {
            host.split_once('.')
                .and_then(|(_, parent)| self.wildcard_certs.get(parent).cloned())
        })
    }
}

fn is_default_class(c: &IngressClass) -> bool {
    c.metadata
        .annotations_map()
        .get(ANN_DEFAULT_CLASS)
        .is_some_and(|v| v == "true")
}

/// The default IngressClass's name: the newest annotated one, then by name
/// (as the DefaultIngressClass admission picks it).
pub fn default_class(classes: &[Arc<IngressClass>]) -> Option<String> {
    classes
        .iter()
        .filter(|c| is_default_class(c))
        .max_by(|a, b| {
            let at = |c: &IngressClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
            at(a)
                .cmp(&at(b))
                .then_with(|| b.metadata.name_str().cmp(a.metadata.name_str()))
        })
        .map(|c| c.metadata.name_str().to_string())
}

/// The class an Ingress asks for: `spec.ingressClassName`, else the deprecated annotation.
pub fn class_of(ing: &Ingress) -> Option<String> {
    ing.spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| {
            ing.metadata
                .annotations_map()
                .get(ANN_LEGACY_CLASS)
                .cloned()
        })
}

/// Whether this controller serves `ing`: its class names controller
/// `korral.dev/ingress`, or it names none and the default class does.
pub fn is_ours(ing: &Ingress, classes: &[Arc<IngressClass>]) -> bool {
    let Some(class) = class_of(ing).or_else(|| default_class(classes)) else {
        return false;
    };
    classes.iter().any(|c| {
        c.metadata.name_str() == class
            && c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
    })
}

/// The lookups `build` needs, by `namespace/name`.
struct Objects<'a> {
    services: HashMap<String, &'a Service>,
    endpoints: HashMap<String, &'a Endpoints>,
    secrets: HashMap<String, &'a Secret>,
    upstreams: HashMap<String, Arc<Upstream>>,
    warnings: Vec<String>,
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

impl Objects<'_> {
    /// The ready endpoints behind a backend (one Upstream per Service port, shared).
    fn upstream(&mut self, ns: &str, backend: &IngressBackend) -> Arc<Upstream> {
        let Some(svc) = backend.service.as_ref() else {
            let name = key(ns, "<resource backend>");
            self.warnings
                .push(format!("{name}: resource backends are not supported"));
            return Arc::new(Upstream::new(name, Vec::new()));
        };
        let port = svc.port.as_ref();
        let wanted = match (
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.clone()),
        ) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n,
            (None, None) => String::new(),
        };
        let name = format!("{}:{wanted}", key(ns, &svc.name));
        if let Some(u) = self.upstreams.get(&name) {
            return u.clone();
        }
        let addrs = self.resolve(ns, &svc.name, port.and_then(|p| p.number), &wanted);
        let u = Arc::new(Upstream::new(name.clone(), addrs));
        self.upstreams.insert(name, u.clone());
        u
    }

    fn resolve(
        &mut self,
        ns: &str,
        service: &str,
        number: Option<i32>,
        wanted: &str,
    ) -> Vec<SocketAddr> {
        let Some(svc) = self.services.get(&key(ns, service)) else {
            self.warnings
                .push(format!("service {} not found", key(ns, service)));
            return Vec::new();
        };
        let spec = svc.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            self.warnings.push(format!(
                "service {}: ExternalName backends are not supported",
                key(ns, service)
            ));
            return Vec::new();
        }
        let Some(port) = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .find(|p| match number {
                Some(n) => p.port == n,
                None => p.name.as_deref() == Some(wanted),
            })
        else {
            self.warnings
                .push(format!("service {} has no port {wanted}", key(ns, service)));
            return Vec::new();
        };
        let Some(ep) = self.endpoints.get(&key(ns, service)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for subset in ep.subsets.iter().flatten() {
            let Some(p) =
                subset.ports.iter().flatten().find(|p| {
                    p.name.as_deref().unwrap_or("") == port.name.as_deref().unwrap_or("")
                })
            else {
                continue;
            };
            let Ok(target) = u16::try_from(p.port) else {
                continue;
            };
            for a in subset.addresses.iter().flatten() {
                if let Ok(ip) = a.ip.parse::<IpAddr>() {
                    out.push(SocketAddr::new(ip, target));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The certificate in a `kubernetes.io/tls` Secret.
    fn cert(&mut self, ns: &str, name: &str) -> Option<Arc<CertifiedKey>> {
        let Some(secret) = self.secrets.get(&key(ns, name)) else {
            self.warnings
                .push(format!("TLS secret {} not found", key(ns, name)));
            return None;
        };
        match certified_key(secret) {
            Ok(k) => Some(k),
            Err(e) => {
                self.warnings
                    .push(format!("TLS secret {}: {e}", key(ns, name)));
                None
            }
        }
    }
}

/// The certificate chain and key of a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`).
pub fn certified_key(secret: &Secret) -> Result<Arc<CertifiedKey>, String> {
    let data = secret.data.clone().unwrap_or_default();
    let (Some(crt), Some(key)) = (data.get("tls.crt"), data.get("tls.key")) else {
        return Err("no tls.crt and tls.key".into());
    };
    certified_key_pem(&crt.0, &key.0)
}

/// A signing key and chain from PEM.
pub fn certified_key_pem(crt: &[u8], key: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("tls.key: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls.key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

fn path_rule(path: Option<&str>, kind: &str, backend: Arc<Upstream>) -> PathRule {
    let raw = path.unwrap_or("/");
    let kind = match kind {
        "Exact" => PathKind::Exact,
        _ => PathKind::Prefix,
    };
    let path = match kind {
        PathKind::Exact => raw.to_string(),
        PathKind::Prefix => raw.trim_end_matches('/').to_string(),
    };
    PathRule {
        kind,
        path,
        backend,
    }
}

/// Builds the table from the caches' contents. Older Ingresses win conflicts
/// (the same host and path, or the same TLS host), as in ingress-nginx.
pub fn build(
    ingresses: &[Arc<Ingress>],
    classes: &[Arc<IngressClass>],
    services: &[Arc<Service>],
    endpoints: &[Arc<Endpoints>],
    secrets: &[Arc<Secret>],
) -> Table {
    let by_key = |ns: Option<&String>, name: &str| key(ns.map_or("", |s| s.as_str()), name);
    let mut objs = Objects {
        services: services
            .iter()
            .map(|s| {
                (
                    by_key(s.metadata.namespace.as_ref(), s.metadata.name_str()),
                    s.as_ref(),
                )
            })
            .collect(),
        endpoints: endpoints
            .iter()
            .map(|e| {
                (
                    by_key(e.metadata.namespace.as_ref(), e.metadata.name_str()),
                    e.as_ref(),
                )
            })
            .collect(),
        secrets: secrets
            .iter()
            .map(|s| {
                (
                    by_key(s.metadata.namespace.as_ref(), s.metadata.name_str()),
                    s.as_ref(),
                )
            })
            .collect(),
        upstreams: HashMap::new(),
        warnings: Vec::new(),
    };
    let mut ours: Vec<&Ingress> = ingresses
        .iter()
        .map(AsRef::as_ref)
        .filter(|i| i.metadata.deletion_timestamp.is_none() && is_ours(i, classes))
        .collect();
    ours.sort_by(|a, b| {
        let at = |i: &Ingress| i.metadata.creation_timestamp.as_ref().map(|t| t.0);
        at(a)
            .cmp(&at(b))
            .then_with(|| a.metadata.namespace_str().cmp(b.metadata.namespace_str()))
            .then_with(|| a.metadata.name_str().cmp(b.metadata.name_str()))
    });
    let mut table = Table::default();
    for ing in ours {
        let ns = ing.metadata.namespace_str().to_string();
        let name = ing.metadata.name_str().to_string();
        table.ingresses.push((ns.clone(), name.clone()));
        let spec = ing.spec.clone().unwrap_or_default();
        let default = spec.default_backend.as_ref().map(|b| objs.upstream(&ns, b));
        if table.default_backend.is_none() {
            table.default_backend = default.clone();
        }
        let mut hosts = Vec::new();
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.as_deref().map(normalize_host).unwrap_or_default();
            let rules = match host.strip_prefix("*.") {
                _ if host.is_empty() => &mut table.any,
                Some(parent) => table.wildcard.entry(parent.to_string()).or_default(),
                None => table.exact.entry(host.clone()).or_default(),
            };
            if rules.default_backend.is_none() {
                rules.default_backend = default.clone();
            }
            for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let upstream = objs.upstream(&ns, &p.backend);
                let pr = path_rule(p.path.as_deref(), &p.path_type, upstream);
                let shown = pr.path.clone();
                if !rules.add(pr) {
                    objs.warnings.push(format!(
                        "ingress {ns}/{name}: host {host:?} path {shown:?} is already routed by an older Ingress"
                    ));
                }
            }
            if !host.is_empty() {
                hosts.push(host);
            }
        }
        for tls in spec.tls.iter().flatten() {
            let Some(secret) = tls.secret_name.as_deref() else {
                continue;
            };
            let Some(cert) = objs.cert(&ns, secret) else {
                continue;
            };
            let names = match tls.hosts.as_deref() {
                Some(h) if !h.is_empty() => h.iter().map(|h| normalize_host(h)).collect(),
                _ => hosts.clone(),
            };
            for h in names {
                let slot = match h.strip_prefix("*.") {
                    Some(parent) => table.wildcard_certs.entry(parent.to_string()),
                    None => table.certs.entry(h),
                };
                slot.or_insert_with(|| cert.clone());
            }
        }
    }
    table.warnings = objs.warnings;
    table
}

/// The `status.loadBalancer.ingress` an Ingress should carry: its current
/// entries plus `ip` (each node running the controller adds its address).
pub fn status_with(ing: &Ingress, ip: &str) -> Option<serde_json::Value> {
    use crate::servicelb::status;
    let current = status::entries(
        ing.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref()),
    );
    let list = status::ingress_with(current, ip, true)?;
    Some(serde_json::json!({"status": {"loadBalancer": {"ingress": list}}}))
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
