//! A thin layer over containerd's gRPC services: requests carry the
//! namespace and korral's permanent lease (so imported content and
//! snapshots are never garbage-collected), errors become readable, and
//! content blobs are read and written whole.

use containerd_client::services::v1::{ReadContentRequest, WriteAction, WriteContentRequest};
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::{Client, services::v1::leases_client::LeasesClient};

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

    /// Writes a blob (a no-op when it exists).
    pub async fn write_blob(&self, digest: &str, data: Vec<u8>) -> Result<(), String> {
        let mut c = containerd_client::services::v1::content_client::ContentClient::new(
            self.channel.clone(),
        );
        let info = c
            .info(self.req(containerd_client::services::v1::InfoRequest {
                digest: digest.to_string(),
            }))
            .await;
        if info.is_ok() {
            return Ok(());
        }
        let total = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let reference = format!("korral-import-{digest}");
        let mut reqs = Vec::new();
        let mut offset = 0usize;
        for chunk in data.chunks(1 << 20) {
            reqs.push(WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total,
                expected: digest.to_string(),
                offset: i64::try_from(offset).unwrap_or(0),
                data: chunk.to_vec(),
                labels: Default::default(),
            });
            offset += chunk.len();
        }
        reqs.push(WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference,
            total,
            expected: digest.to_string(),
            offset: total,
            data: Vec::new(),
            labels: Default::default(),
        });
        let stream = futures_util::stream::iter(reqs);
        let resp = c.write(self.req(stream)).await;
        let mut inner = match resp {
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
}
