//! The service proxy (kube-proxy's iptables mode): watches Services and
//! Endpoints and keeps the node's iptables rules in step — cluster IPs,
//! node ports and external IPs DNATed to ready endpoints with per-endpoint
//! random balancing, ClientIP affinity, masquerade where needed, REJECT
//! for services without endpoints.
//!
//! [`model`] turns objects into service ports, [`rules`] renders them
//! (pure, golden-tested), [`iptables`] applies them: one atomic
//! `iptables-restore --noflush` per sync, over the proxy's own `KORRAL-`
//! chains only. A sync runs after every change (coalesced, at most one per
//! `min_sync_interval`), every `sync_period` (a check: the rules are
//! re-rendered and the jump rules re-checked, nothing is written when
//! nothing changed) and every `full_sync_period` (kube-proxy's hourly full
//! sync). A sync after a change writes only the chains that changed (and
//! deletes the ones gone); the full sync rewrites everything and re-reads
//! the chains present, repairing whatever someone else changed.
//! With localhost node ports (the default, as kube-proxy's
//! `--iptables-localhost-nodeports`) [`run`] first sets
//! [`ROUTE_LOCALNET`] in the daemon's network namespace.

pub mod iptables;
pub mod model;
pub mod names;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Service};
use reconcilers::runtime::watcher::Config as WatchConfig;
use reconcilers::runtime::{Client, Informer};
use tokio::sync::broadcast::error::TryRecvError;

use model::ServicePort;
use rules::{RuleConfig, Ruleset};

/// How the proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// What the rules depend on besides the services.
    pub rules: RuleConfig,
    /// Check period (kube-proxy's `--iptables-sync-period`, 30 s): re-render,
    /// write what changed, re-check the jump rules.
    pub sync_period: Duration,
    /// Full rewrite period (kube-proxy's `fullSyncPeriod`, 1 h).
    pub full_sync_period: Duration,
    /// At most one sync per this interval (kube-proxy's minSyncPeriod, 1 s).
    pub min_sync_interval: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            rules: RuleConfig::default(),
            sync_period: Duration::from_secs(30),
            full_sync_period: Duration::from_secs(3600),
            min_sync_interval: Duration::from_secs(1),
        }
    }
}

/// What one sync did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncStats {
    /// Whether iptables was written (false: the rules were already current).
    pub applied: bool,
    /// Rules in the proxy's chains.
    pub rules: usize,
    /// The proxy's chains.
    pub chains: usize,
    /// Chains deleted because their services or endpoints went away.
    pub deleted: usize,
    /// How long it took.
    pub took: Duration,
}

/// Applies rule sets, remembering the last one and the chains present.
pub struct Syncer {
    config: RuleConfig,
    last: Option<Ruleset>,
    existing: Option<BTreeMap<&'static str, BTreeSet<String>>>,
}

impl Syncer {
    /// A syncer that has applied nothing yet.
    pub fn new(config: RuleConfig) -> Syncer {
        Syncer {
            config,
            last: None,
            existing: None,
        }
    }

    /// Makes iptables match `ports`. `full` re-reads the chains present,
    /// re-applies even unchanged rules and re-checks the jumps.
    pub async fn sync(&mut self, ports: &[ServicePort], full: bool) -> Result<SyncStats, String> {
        let started = Instant::now();
        let ruleset = rules::render(ports, &self.config);
        let mut stats = SyncStats {
            rules: ruleset
                .nat
                .values()
                .chain(ruleset.filter.values())
                .map(Vec::len)
                .sum(),
            chains: ruleset.nat.len() + ruleset.filter.len(),
            ..SyncStats::default()
        };
        if !full && self.last.as_ref() == Some(&ruleset) {
            stats.took = started.elapsed();
            return Ok(stats);
        }
        let first = self.existing.is_none();
        let existing = match self.existing.take() {
            Some(e) if !full => e,
            _ => iptables::existing_chains().await?,
        };
        let mut stale: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (table, chains) in &existing {
            let wanted = if *table == "nat" {
                &ruleset.nat
            } else {
                &ruleset.filter
            };
            let gone: Vec<String> = chains
                .iter()
                .filter(|c| !wanted.contains_key(*c))
                .cloned()
                .collect();
            stats.deleted += gone.len();
            stale.insert(table, gone);
        }
        let input = match (&self.last, full) {
            (Some(last), false) => {
                ruleset.partial_restore_input(Some(&ruleset.changed_since(last)), &stale)
            }
            _ => ruleset.restore_input(&stale),
        };
        iptables::restore(&input).await?;
        if full || first {
            iptables::ensure_jumps().await?;
        }
        let mut now = BTreeMap::new();
        now.insert("filter", ruleset.filter.keys().cloned().collect());
        now.insert("nat", ruleset.nat.keys().cloned().collect());
        self.existing = Some(now);
        self.last = Some(ruleset);
        stats.applied = true;
        stats.took = started.elapsed();
        Ok(stats)
    }
}

/// The service ports in the caches now.
fn snapshot(services: &Informer<Service>, endpoints: &Informer<Endpoints>) -> Vec<ServicePort> {
    let (s, e) = (services.cache().all(), endpoints.cache().all());
    let s: Vec<&Service> = s.iter().map(AsRef::as_ref).collect();
    let e: Vec<&Endpoints> = e.iter().map(AsRef::as_ref).collect();
    model::service_ports(&s, &e)
}

/// The sysctl that lets packets to and from 127.0.0.0/8 be routed off the
/// loopback interface (per network namespace: only the node daemon's own).
pub const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

/// Sets `net.ipv4.conf.all.route_localnet=1`, as kube-proxy does for node
/// ports on localhost; true when it was not set yet.
pub fn ensure_route_localnet() -> Result<bool, String> {
    let now =
        std::fs::read_to_string(ROUTE_LOCALNET).map_err(|e| format!("{ROUTE_LOCALNET}: {e}"))?;
    if now.trim() == "1" {
        return Ok(false);
    }
    std::fs::write(ROUTE_LOCALNET, b"1")
        .map_err(|e| format!("writing 1 to {ROUTE_LOCALNET}: {e}"))?;
    Ok(true)
}

/// Runs the proxy until the task is dropped.
pub async fn run(client: Client, mut config: ProxyConfig) {
    if config.rules.localhost_nodeports {
        match ensure_route_localnet() {
            Ok(changed) => tracing::info!(
                changed,
                "node ports answer on 127.0.0.1 too: net.ipv4.conf.all.route_localnet=1 \
                 (--iptables-localhost-nodeports=false turns this off)"
            ),
            Err(e) => {
                // without it a DNATed packet from 127.0.0.1 cannot leave: exclude loopback instead
                tracing::warn!(error = %e, "node ports will not answer on 127.0.0.1");
                config.rules.localhost_nodeports = false;
            }
        }
    }
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
    let (mut svc_rx, mut ep_rx) = (services.subscribe(), endpoints.subscribe());
    services.cache().wait_synced().await;
    endpoints.cache().wait_synced().await;
    let mut syncer = Syncer::new(config.rules.clone());
    let mut next_full = Instant::now();
    let mut next_check = Instant::now() + config.sync_period;
    loop {
        let full = Instant::now() >= next_full;
        let check = full || Instant::now() >= next_check;
        let ports = snapshot(&services, &endpoints);
        match syncer.sync(&ports, full).await {
            Ok(stats) => {
                if stats.applied {
                    tracing::info!(
                        services = ports.len(),
                        rules = stats.rules,
                        chains = stats.chains,
                        deleted = stats.deleted,
                        full,
                        took_ms = stats.took.as_millis(),
                        "service proxy synced"
                    );
                }
                if full {
                    next_full = Instant::now() + config.full_sync_period;
                }
                if check {
                    if !full && let Err(e) = iptables::ensure_jumps().await {
                        tracing::warn!(error = %e, "service proxy: re-adding the jump rules failed");
                    }
                    next_check = Instant::now() + config.sync_period;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "service proxy sync failed; retrying");
                // a failed sync is retried in full (the chains present are unknown)
                next_full =
                    Instant::now() + config.min_sync_interval.max(Duration::from_millis(500));
            }
        }
        let synced_at = Instant::now();
        // wait for a change, the next check or the next full sync
        tokio::select! {
            _ = svc_rx.recv() => {}
            _ = ep_rx.recv() => {}
            _ = tokio::time::sleep_until(next_full.min(next_check).into()) => {}
        }
        // coalesce: at most one sync per interval, taking every change queued meanwhile
        let due = synced_at + config.min_sync_interval;
        if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
        }
        drain(&mut svc_rx);
        drain(&mut ep_rx);
    }
}

/// The pause after a listener's failed accept or receive (e.g. out of file
/// descriptors), so the node's TCP/UDP servers do not spin on an error.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// How often the Ingress controller and the service load balancer run a pass
/// with nothing changed, to retry taken ports and failed status writes.
pub const RETRY_PASS: Duration = Duration::from_secs(30);

/// Empties a change feed (the next sync reads the caches anyway).
pub fn drain<T: Clone>(rx: &mut tokio::sync::broadcast::Receiver<T>) {
    loop {
        match rx.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// Removes everything the proxy installed (`korral node --cleanup`).
pub async fn cleanup() -> Result<(), String> {
    iptables::cleanup().await
}
