//! `EtcdStore`: the etcd v3 backend, for more than one machine.
//!
//! Trait keys live under a prefix (`/registry/` by default, as in
//! Kubernetes): `pods/default/web` is `/registry/pods/default/web` in etcd.
//! Writes are single `Txn`s that compare before they write (create:
//! `create_revision == 0`; update/delete: the key exists and its
//! `mod_revision` is the expected one), so etcd's revision is the store's
//! revision. Lists are paginated range reads pinned to one revision. Watches
//! resume after a dropped connection ([`watch`]). Snapshots are etcd's own
//! ([`snapshot`]).

mod convert;
mod pool;
mod snapshot;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Certificate, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, GetResponse,
    Identity, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use tokio::sync::mpsc;

use self::convert::{is_compacted, is_future, map_err, prefix_range_end};
use self::pool::{Pool, Retry};
use crate::store::{
    Deleted, KeyValue, ListRequest, ListResponse, Result, Revision, SnapshotWritten, Store,
    StoreError, WatchStream,
};

/// TLS to etcd: files in PEM, as etcd's own `--cacert`, `--cert`, `--key`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA that signed etcd's server certificates (`None`: the system roots are not used, so set this).
    pub ca_file: Option<PathBuf>,
    /// The client certificate, for etcd's `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's key.
    pub key_file: Option<PathBuf>,
    /// The name to check the server certificate against, when it is not the endpoint's host.
    pub domain_name: Option<String>,
}

/// etcd user and password (etcd's `--user`).
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdAuth {
    /// The etcd user.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for EtcdAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Client URLs of the cluster's members (`http://` or, with TLS, `https://`).
    pub endpoints: Vec<String>,
    /// Where korral's keys live in etcd; a trailing `/` is added if missing.
    pub prefix: String,
    /// TLS settings; `None` for plain HTTP.
    pub tls: Option<EtcdTls>,
    /// User and password; `None` when etcd's auth is off.
    pub auth: Option<EtcdAuth>,
    /// How long to wait for a connection to a member.
    pub connect_timeout: Duration,
    /// How long to wait for the answer to one request.
    pub request_timeout: Duration,
    /// Keys per range read when a list asks for no limit.
    pub page_size: i64,
    /// Also ask etcd for watch progress this often (`RequestProgress`). Off
    /// by default: etcd before 3.4.25 / 3.5.8 (Debian 12 ships 3.4.23) may
    /// answer it ahead of events still queued (etcd issue 15220), which would
    /// break the `Progress` promise. Idle watches still get `Progress` from
    /// etcd's own timer: run etcd with
    /// `--experimental-watch-progress-notify-interval=5s`, as Kubernetes advises.
    pub progress_request_interval: Option<Duration>,
}

impl EtcdOptions {
    /// Defaults for these endpoints: prefix `/registry/`, no TLS, no auth.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        EtcdOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: "/registry/".into(),
            tls: None,
            auth: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            page_size: 500,
            progress_request_interval: None,
        }
    }
}

/// The etcd backend.
pub struct EtcdStore {
    pool: Arc<Pool>,
    prefix: String,
    page_size: i64,
    progress_request_interval: Option<Duration>,
    /// The highest compacted revision seen so far (compaction only grows).
    compacted_hint: Arc<AtomicI64>,
    /// Dropped with the store, which ends its watches.
    shutdown: tokio::sync::watch::Sender<()>,
}

impl EtcdStore {
    /// Connects and checks that etcd answers.
    pub async fn connect(options: EtcdOptions) -> Result<EtcdStore> {
        if options.endpoints.is_empty() {
            return Err(StoreError::Unavailable("no etcd endpoints given".into()));
        }
        let endpoints = options.endpoints.join(",");
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            // A member cut off from the others refuses requests (and ends
            // watches), so they move to a member that has a leader.
            .with_require_leader(true);
        if let Some(tls) = &options.tls {
            connect = connect.with_tls(tls_options(tls)?);
        }
        if let Some(auth) = &options.auth {
            connect = connect
                .with_user(auth.user.clone(), auth.password.clone())
                .with_auto_token_refresh(true);
        }
        let deadline = (options.connect_timeout + options.request_timeout)
            * u32::try_from(options.endpoints.len()).unwrap_or(u32::MAX);
        let pool = Arc::new(Pool::new(&options.endpoints, connect));
        let mut prefix = options.prefix.clone();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let store = EtcdStore {
            pool,
            prefix,
            page_size: options.page_size.max(1),
            progress_request_interval: options.progress_request_interval,
            compacted_hint: Arc::new(AtomicI64::new(0)),
            shutdown: tokio::sync::watch::channel(()).0,
        };
        let revision = tokio::time::timeout(deadline, store.current_revision())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "etcd at {endpoints} did not answer within {deadline:?}"
                ))
            })?
            .map_err(|e| match e {
                StoreError::Unavailable(m) => {
                    StoreError::Unavailable(format!("etcd at {endpoints}: {m}"))
                }
                StoreError::Internal(m) => {
                    StoreError::Internal(format!("etcd at {endpoints}: {m}"))
                }
                other => other,
            })?;
        tracing::info!(%endpoints, prefix = %store.prefix, revision, "connected to etcd");
        Ok(store)
    }

    /// The prefix korral's keys live under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A range read on whichever member answers.
    /// The etcd key range a list covers: from the first key after
    /// `start_after` (or the prefix) to the prefix's end.
    fn key_range(&self, req: &ListRequest) -> (Vec<u8>, Vec<u8>) {
        let full_prefix = self.full(&req.prefix);
        let end = prefix_range_end(full_prefix.as_bytes());
        let from = match req
            .start_after
            .as_deref()
            .filter(|a| *a >= req.prefix.as_str())
        {
            Some(after) => {
                let mut k = self.full(after).into_bytes();
                k.push(0);
                k
            }
            None => full_prefix.into_bytes(),
        };
        (from, end)
    }

    async fn range(
        &self,
        key: Vec<u8>,
        opts: Option<GetOptions>,
    ) -> std::result::Result<GetResponse, etcd_client::Error> {
        self.pool
            .call(Retry::Read, |c| {
                let (key, opts) = (key.clone(), opts.clone());
                async move { c.kv_client().get(key, opts).await }
            })
            .await
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Whether a read at `revision` is still possible.
    async fn readable(&self, revision: Revision) -> Result<bool> {
        let opts = GetOptions::new().with_revision(revision).with_count_only();
        match self
            .range(self.prefix.clone().into_bytes(), Some(opts))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_compacted(&e) => Ok(false),
            Err(e) => Err(map_err(e, "reading at a revision")),
        }
    }

    /// The error for a read or watch at `requested`, given etcd's error.
    async fn revision_error(
        &self,
        e: etcd_client::Error,
        requested: Revision,
        what: &str,
    ) -> StoreError {
        if is_compacted(&e) {
            let compacted = self.compacted_revision().await.unwrap_or(requested + 1);
            return StoreError::Compacted {
                requested,
                compacted,
            };
        }
        if is_future(&e) {
            let current = self.current_revision().await.unwrap_or(requested - 1);
            return StoreError::FutureRevision { requested, current };
        }
        map_err(e, what)
    }

    async fn txn(&self, txn: Txn, what: &str) -> Result<TxnResponse> {
        self.txn_raw(txn, Retry::Write)
            .await
            .map_err(|e| map_err(e, what))
    }

    async fn txn_raw(
        &self,
        txn: Txn,
        retry: Retry,
    ) -> std::result::Result<TxnResponse, etcd_client::Error> {
        self.pool
            .call(retry, |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await
    }
}

fn tls_options(tls: &EtcdTls) -> Result<TlsOptions> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).map_err(|e| {
            StoreError::Internal(format!("cannot read etcd {what} {}: {e}", path.display()))
        })
    };
    let mut out = TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        out = out.ca_certificate(Certificate::from_pem(read(ca, "CA file")?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            out = out.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Internal(
                "etcd TLS: give both a client certificate and its key, or neither".into(),
            ));
        }
    }
    if let Some(name) = &tls.domain_name {
        out = out.domain_name(name.clone());
    }
    Ok(out)
}

fn header_revision(resp: &TxnResponse, what: &str) -> Result<Revision> {
    resp.header()
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Internal(format!("etcd answered {what} without a header")))
}

/// The key of a failed compare-and-swap, from the `get` in its else branch.
fn else_kv(resp: &TxnResponse, prefix: &str) -> Result<Option<KeyValue>> {
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(get) = op {
            return get
                .kvs()
                .first()
                .map(|kv| convert::kv(kv, prefix))
                .transpose();
        }
    }
    Err(StoreError::Internal(
        "etcd answered a failed transaction without its read".into(),
    ))
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .range(
                self.prefix.clone().into_bytes(),
                Some(GetOptions::new().with_count_only()),
            )
            .await
            .map_err(|e| map_err(e, "reading the current revision"))?;
        resp.header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::Internal("etcd answered a read without a header".into()))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        // etcd does not report it directly: find the oldest readable revision
        // by bisection (compaction only moves forward, so start at the hint).
        let current = self.current_revision().await?;
        let mut lo = self.compacted_hint.load(Ordering::Acquire).max(1);
        let mut hi = current.max(lo);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.readable(mid).await? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let compacted = if lo <= 1 { 0 } else { lo };
        self.compacted_hint.fetch_max(compacted, Ordering::AcqRel);
        Ok(compacted)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .range(self.full(key).into_bytes(), None)
            .await
            .map_err(|e| map_err(e, "reading a key"))?;
        resp.kvs()
            .first()
            .map(|kv| convert::kv(kv, &self.prefix))
            .transpose()
    }

    async fn list(&self, req: ListRequest) -> Result<ListResponse> {
        let (mut from, end) = self.key_range(&req);
        let mut revision = req.revision.filter(|r| *r > 0);
        let limit = req.limit.filter(|l| *l > 0);
        let mut kvs = Vec::new();
        loop {
            let want = match limit {
                Some(l) => {
                    i64::try_from(l - kvs.len()).map_or(self.page_size, |r| r.min(self.page_size))
                }
                None => self.page_size,
            };
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(want);
            if let Some(r) = revision {
                opts = opts.with_revision(r);
            }
            let resp = match self.range(from.clone(), Some(opts)).await {
                Ok(resp) => resp,
                Err(e) => {
                    let requested = revision.unwrap_or(0);
                    return Err(self.revision_error(e, requested, "listing keys").await);
                }
            };
            let read_at = match revision {
                Some(r) => r,
                None => resp.header().map(|h| h.revision()).ok_or_else(|| {
                    StoreError::Internal("etcd answered a list without a header".into())
                })?,
            };
            revision = Some(read_at);
            for kv in resp.kvs() {
                kvs.push(convert::kv(kv, &self.prefix)?);
            }
            let full_page = limit.is_some_and(|l| kvs.len() >= l);
            if !resp.more() || full_page {
                return Ok(ListResponse {
                    kvs,
                    revision: read_at,
                    more: resp.more(),
                });
            }
            let Some(last) = resp.kvs().last() else {
                return Err(StoreError::Internal(
                    "etcd said more keys remain but sent none".into(),
                ));
            };
            from = last.key().to_vec();
            from.push(0);
        }
    }

    async fn count(&self, req: ListRequest) -> Result<usize> {
        let (from, end) = self.key_range(&req);
        let mut opts = GetOptions::new().with_range(end).with_count_only();
        if let Some(r) = req.revision.filter(|r| *r > 0) {
            opts = opts.with_revision(r);
        }
        match self.range(from, Some(opts)).await {
            Ok(resp) => Ok(usize::try_from(resp.count()).unwrap_or(0)),
            Err(e) => Err(self
                .revision_error(e, req.revision.unwrap_or(0), "counting keys")
                .await),
        }
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let full = self.full(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full.as_str(), value.clone(), None)]);
        let (resp, resent) = match self.txn_raw(txn.clone(), Retry::Write).await {
            Ok(resp) => (resp, false),
            // the member went away: the create may or may not have been
            // applied. It is conditional on the key's absence, so it can be
            // sent again, and an "exists" answer checked against what we wrote
            Err(e) if pool::unavailable(&e) => {
                tracing::warn!(key, error = %e, "a create's outcome is unknown; sending it again");
                let resp = self
                    .txn_raw(txn, Retry::Read)
                    .await
                    .map_err(|e| map_err(e, "creating a key"))?;
                (resp, true)
            }
            Err(e) => return Err(map_err(e, "creating a key")),
        };
        if !resp.succeeded() {
            if resent
                && let Some(kv) = self.get(key).await?
                && kv.version == 1
                && kv.value == value
            {
                return Ok(kv);
            }
            return Err(StoreError::AlreadyExists { key: key.into() });
        }
        let rev = header_revision(&resp, "a create")?;
        Ok(KeyValue {
            key: key.into(),
            value,
            create_revision: rev,
            mod_revision: rev,
            version: 1,
        })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        let full = self.full(key);
        let txn = Txn::new()
            .when([
                Compare::version(full.as_str(), CompareOp::Greater, 0),
                Compare::mod_revision(full.as_str(), CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(
                full.as_str(),
                value.clone(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full.as_str(), None)]);
        let resp = self.txn(txn, "updating a key").await?;
        if !resp.succeeded() {
            return Err(match else_kv(&resp, &self.prefix)? {
                None => StoreError::NotFound { key: key.into() },
                Some(cur) => StoreError::Conflict {
                    key: key.into(),
                    expected,
                    actual: cur.mod_revision,
                },
            });
        }
        let rev = header_revision(&resp, "an update")?;
        let prev = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Put(put) => put.prev_key().cloned(),
            _ => None,
        });
        let Some(prev) = prev else {
            return Err(StoreError::Internal(
                "etcd answered an update without the previous value".into(),
            ));
        };
        Ok(KeyValue {
            key: key.into(),
            value,
            create_revision: prev.create_revision(),
            mod_revision: rev,
            version: prev.version() + 1,
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        let full = self.full(key);
        let mut when = vec![Compare::version(full.as_str(), CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            when.push(Compare::mod_revision(
                full.as_str(),
                CompareOp::Equal,
                expected,
            ));
        }
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::delete(
                full.as_str(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full.as_str(), None)]);
        let resp = self.txn(txn, "deleting a key").await?;
        if !resp.succeeded() {
            return Err(match else_kv(&resp, &self.prefix)? {
                None => StoreError::NotFound { key: key.into() },
                Some(cur) => StoreError::Conflict {
                    key: key.into(),
                    expected: expected.unwrap_or(0),
                    actual: cur.mod_revision,
                },
            });
        }
        let revision = header_revision(&resp, "a delete")?;
        let prev = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(del) => del.prev_kvs().first().cloned(),
            _ => None,
        });
        let Some(prev) = prev else {
            return Err(StoreError::Internal(
                "etcd answered a delete without the previous value".into(),
            ));
        };
        Ok(Deleted {
            prev: convert::kv(&prev, &self.prefix)?,
            revision,
        })
    }

    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream> {
        let current = self.current_revision().await?;
        let next = if start <= 0 { current + 1 } else { start };
        if next <= current {
            // etcd reports a compacted start only later, on the stream: check
            // now so callers get the error here, as from the local store.
            if !self.readable(next).await? {
                let compacted = self.compacted_revision().await?;
                return Err(StoreError::Compacted {
                    requested: next,
                    compacted,
                });
            }
        }
        let (out, rx) = mpsc::channel(256);
        let task = watch::EtcdWatch {
            pool: self.pool.clone(),
            store_prefix: self.prefix.clone(),
            watch_prefix: self.full(prefix),
            next,
            out,
            progress_request_interval: self.progress_request_interval,
            shutdown: self.shutdown.subscribe(),
        };
        tokio::spawn(task.run());
        Ok(WatchStream::new(rx))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let compacted = self
            .pool
            .call(Retry::Read, |c| async move {
                c.kv_client().compact(revision, None).await
            })
            .await;
        match compacted {
            Ok(_) => {
                self.compacted_hint.fetch_max(revision, Ordering::AcqRel);
                Ok(())
            }
            // Already compacted at or past it: nothing to do.
            Err(e) if is_compacted(&e) => Ok(()),
            Err(e) if is_future(&e) => Err(StoreError::FutureRevision {
                requested: revision,
                current: self.current_revision().await?,
            }),
            Err(e) => Err(map_err(e, "compacting")),
        }
    }

    async fn snapshot(&self, dest: &std::path::Path) -> Result<SnapshotWritten> {
        let revision = snapshot::write(self, dest).await?;
        Ok(SnapshotWritten {
            revision,
            backend: "etcd",
        })
    }
}
