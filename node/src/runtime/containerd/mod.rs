//! The containerd runtime (being written).

use std::path::PathBuf;

/// How to reach containerd.
#[derive(Clone, Debug)]
pub struct Options {
    /// The gRPC socket.
    pub address: PathBuf,
    /// The containerd namespace.
    pub namespace: String,
    /// The snapshotter.
    pub snapshotter: String,
    /// The node's name.
    pub node: String,
    /// The node's data directory.
    pub data_dir: PathBuf,
}

/// The containerd runtime.
pub struct Containerd;

impl Containerd {
    /// Connects.
    pub async fn connect(_o: Options, _cidr: Option<&str>) -> Result<Containerd, String> {
        Err("not yet".into())
    }
}

#[async_trait::async_trait]
impl crate::runtime::Runtime for Containerd {
    fn kind(&self) -> &'static str { "containerd" }
    async fn version(&self) -> String { String::new() }
    async fn run_sandbox(&self, _s: &crate::runtime::PodSandbox) -> crate::runtime::Result<String> { Err(crate::runtime::RuntimeError::Other("x".into())) }
    async fn remove_sandbox(&self, _u: &str) -> crate::runtime::Result<()> { Ok(()) }
    async fn start(&self, _s: &crate::runtime::PodSandbox, _c: &crate::runtime::ContainerConfig) -> crate::runtime::Result<crate::runtime::ContainerInfo> { Err(crate::runtime::RuntimeError::Other("x".into())) }
    async fn stop(&self, _id: &str, _g: std::time::Duration) -> crate::runtime::Result<()> { Ok(()) }
    async fn remove(&self, _id: &str) -> crate::runtime::Result<()> { Ok(()) }
    async fn list(&self) -> crate::runtime::Result<Vec<crate::runtime::ContainerInfo>> { Ok(vec![]) }
    async fn exec(&self, _id: &str, _c: &[String], _t: std::time::Duration) -> crate::runtime::Result<crate::runtime::ExecOutput> { Err(crate::runtime::RuntimeError::Other("x".into())) }
    fn events(&self) -> tokio::sync::broadcast::Receiver<String> { crate::runtime::event_channel().subscribe() }
}
