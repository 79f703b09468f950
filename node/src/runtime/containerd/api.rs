//! A thin layer over containerd's gRPC services: requests carry the
//! namespace and korral's permanent lease (so imported content and
//! snapshots are never garbage-collected), errors become readable, and
//! content blobs are read and written whole.

use containerd_client::services::v1::{ReadContentRequest, WriteAction, WriteContentRequest};
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::{Client, services::v1::leases_client::LeasesClient};

/// How much of a streamed blob goes in one write message.
const WRITE_CHUNK: usize = 1 << 20;

/// The lease every korral resource in containerd hangs off.
pub const LEASE: &str = "korral";

/// A connection to containerd in one namespace.
#[derive(Clone)]
pub struct Api {
    /// The channel.
    pub channel: containerd_client::tonic::transport::Channel,
    /// The namespace.
    pub namespace: String,
}

/// A containerd error with context.
pub fn err(what: &str, s: Status) -> String {
    format!("containerd {what}: {}: {}", s.code(), s.message())
}

/// Whether a status is NotFound.
pub fn not_found(s: &Status) -> bool {
    s.code() == Code::NotFound
}

impl Api {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &std::path::Path, namespace: &str) -> Result<Api, String> {
        let client = Client::from_path(path)
            .await
            .map_err(|e| format!("cannot connect to containerd at {}: {e}", path.display()))?;
        let api = Api {
            channel: client.channel(),
            namespace: namespace.to_string(),
        };
        api.ensure_lease().await?;
        Ok(api)
    }

    /// A request in our namespace under our lease.
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Ok(v) = self.namespace.parse() {
            r.metadata_mut().insert("containerd-namespace", v);
        }
        if let Ok(v) = LEASE.parse() {
            r.metadata_mut().insert("containerd-lease", v);
        }
        r
    }

    async fn ensure_lease(&self) -> Result<(), String> {
        let mut c = LeasesClient::new(self.channel.clone());
        let mut r = Request::new(containerd_client::services::v1::CreateRequest {
            id: LEASE.into(),
            labels: Default::default(),
        });
        if let Ok(v) = self.namespace.parse() {
            r.metadata_mut().insert("containerd-namespace", v);
        }
        match c.create(r).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => Ok(()),
            Err(s) => Err(err("creating the korral lease", s)),
        }
    }

    /// Reads a whole blob.
    pub async fn read_blob(&self, digest: &str) -> Result<Vec<u8>, String> {
        let mut c = containerd_client::services::v1::content_client::ContentClient::new(
            self.channel.clone(),
        );
        let mut stream = c
            .read(self.req(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(|s| err(&format!("reading {digest}"), s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| err(&format!("reading {digest}"), s))?
        {
            out.extend_from_slice(&chunk.data);
        }
        Ok(out)
    }

    /// Whether the content store holds a blob.
    pub async fn has_blob(&self, digest: &str) -> bool {
        containerd_client::services::v1::content_client::ContentClient::new(self.channel.clone())
            .info(self.req(containerd_client::services::v1::InfoRequest {
                digest: digest.to_string(),
            }))
            .await
            .is_ok()
    }

    /// Writes a blob as it arrives (`total` bytes, checked against `digest` by
    /// containerd at the commit; a no-op when it exists). A failed `body`
    /// leaves the write uncommitted and aborted.
    pub async fn write_stream<S>(&self, digest: &str, total: i64, body: S) -> Result<(), String>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, String>> + Send + 'static,
    {
        use futures_util::StreamExt;
        if self.has_blob(digest).await {
            return Ok(());
        }
        let mut c = containerd_client::services::v1::content_client::ContentClient::new(
            self.channel.clone(),
        );
        let reference = format!("korral-pull-{digest}-{:08x}", rand::random::<u32>());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(4);
        let (expected, r) = (digest.to_string(), reference.clone());
        let feeder = tokio::spawn(async move {
            let mut body = std::pin::pin!(body);
            let mut offset = 0i64;
            let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
            let msg = |action: WriteAction, offset: i64, data: Vec<u8>| WriteContentRequest {
                action: action as i32,
                r#ref: r.clone(),
                total,
                expected: expected.clone(),
                offset,
                data,
                labels: Default::default(),
            };
            loop {
                let next = body.next().await.transpose()?;
                let end = next.is_none();
                if let Some(b) = next {
                    buf.extend_from_slice(&b);
                }
                while buf.len() >= WRITE_CHUNK || (end && !buf.is_empty()) {
                    let rest = buf.split_off(buf.len().min(WRITE_CHUNK));
                    let data = std::mem::replace(&mut buf, rest);
                    let n = i64::try_from(data.len()).unwrap_or(0);
                    if tx
                        .send(msg(WriteAction::Write, offset, data))
                        .await
                        .is_err()
                    {
                        return Err("containerd closed the write".to_string());
                    }
                    offset += n;
                }
                if end {
                    let _ = tx.send(msg(WriteAction::Commit, offset, Vec::new())).await;
                    return Ok(());
                }
            }
        });
        let requests = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let written = async {
            let mut inner = match c.write(self.req(requests)).await {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
                Err(s) => return Err(err(&format!("writing {digest}"), s)),
            };
            loop {
                match inner.message().await {
                    Ok(Some(_)) => {}
                    Ok(None) => return Ok(()),
                    Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
                    Err(s) => return Err(err(&format!("writing {digest}"), s)),
                }
            }
        }
        .await;
        let fed = feeder
            .await
            .map_err(|e| format!("writing {digest}: {e}"))
            .and_then(|r| r);
        if fed.is_err() || written.is_err() {
            let _ = containerd_client::services::v1::content_client::ContentClient::new(
                self.channel.clone(),
            )
            .abort(self.req(containerd_client::services::v1::AbortRequest { r#ref: reference }))
            .await;
        }
        fed.and(written)
    }

    /// Writes a blob (a no-op when it exists).
    pub async fn write_blob(&self, digest: &str, data: Vec<u8>) -> Result<(), String> {
        let total = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let body = futures_util::stream::once(async move { Ok(bytes::Bytes::from(data)) });
        self.write_stream(digest, total, body).await
    }
}
