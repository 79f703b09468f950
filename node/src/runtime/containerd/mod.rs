//! The `containerd` runtime: containers created through containerd's gRPC
//! API (the `containerd-client` crate) and run by runc. Images come from
//! archives imported locally ([`image`]) or are pulled from registries
//! ([`pull`], configured by [`registry_config`]) and garbage-collected
//! ([`image_store`]); each container gets a snapshot of
//! its image and an OCI spec built from the pod spec ([`spec`]); all
//! containers of a pod join the pod's network namespace ([`network`]);
//! stdout/stderr go to the log file through the shim's `file://` IO, which
//! survives daemon restarts. Containers carry korral labels, so a restarted
//! daemon lists and adopts them instead of starting duplicates.
//!
//! A container with `stdin: true` gets a stdin FIFO (`DATA/io/ID/stdin`)
//! that containerd's shim opens and holds open itself, so attach sessions —
//! of this daemon or the next — open it, write, and close again; `stdinOnce`
//! ends it with `CloseIO`. With `tty: true` the task runs on a terminal
//! whose output comes through a FIFO (`DATA/io/ID/stdout`) the daemon copies
//! to the log file (a restarted daemon takes the copy up again; the shim's
//! own reader keeps the terminal from failing meanwhile, though a full FIFO
//! stalls its output).

pub mod api;
pub mod archive;
pub mod busybox;
pub mod image;
pub mod image_store;
pub mod network;
pub mod pull;
pub mod push;
pub mod registry_config;
pub mod spec;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    CloseIoRequest, Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetRequest,
    KillRequest, ListContainersRequest, ResizePtyRequest, StartRequest, WaitRequest,
    container::Runtime as CRuntime,
};
use containerd_client::tonic::Code;
use tokio::sync::broadcast;

use crate::runtime::auth::Keyring;
use crate::runtime::{
    AttachInput, ContainerConfig, ContainerInfo, EXEC_CHUNK, ExecChunk, ExecStreams, ImageFs,
    ImageInfo, PodSandbox, PulledImage, Result, Runtime, RuntimeError, State, TermSize,
    event_channel, feed_input, labels,
};
use api::{Api, err, not_found};

/// How to reach containerd and where this node keeps things.
#[derive(Clone, Debug)]
pub struct Options {
    /// containerd's gRPC socket.
    pub address: PathBuf,
    /// The containerd namespace of this node's images and containers.
    pub namespace: String,
    /// The snapshotter (`overlayfs`, `native`).
    pub snapshotter: String,
    /// The node's name (labels, bridge and cgroup names).
    pub node: String,
    /// The node's data directory (pod files, IP leases).
    pub data_dir: PathBuf,
    /// Mirrors, TLS and credentials of registries (`--registry-config`).
    pub registries: registry_config::RegistryConfig,
}

/// The containerd runtime of one node.
pub struct Containerd {
    api: Api,
    opts: Options,
    network: Option<network::Network>,
    events: broadcast::Sender<String>,
    puller: std::sync::Arc<pull::Puller>,
}

const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

fn other(e: String) -> RuntimeError {
    RuntimeError::Other(e)
}

fn ts(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        .filter(|d| d.timestamp() > 0)
}

impl Containerd {
    /// Connects to containerd; pods get IPs from `pod_cidr` (without one, pods use the host network).
    pub async fn connect(
        opts: Options,
        pod_cidr: Option<&str>,
    ) -> std::result::Result<Containerd, String> {
        let api = Api::connect(&opts.address, &opts.namespace).await?;
        let network = match pod_cidr {
            Some(c) => Some(network::Network::new(&opts.node, c, &opts.data_dir)?),
            None => {
                tracing::warn!("the Node has no pod CIDR: pods use the host network");
                None
            }
        };
        let puller = std::sync::Arc::new(pull::Puller::new(api.clone(), opts.registries.clone()));
        let rt = Containerd {
            api,
            puller,
            opts,
            network,
            events: event_channel(),
        };
        // wait for the exits of containers a previous daemon started
        for c in rt.list().await.map_err(|e| e.to_string())? {
            if c.is_running() {
                rt.watch(&c.id, &c.pod_uid);
                let fifo = rt.io_dir(&c.id).join(TTY_FIFO);
                if fifo.exists() {
                    let pipe = open_terminal_fifo(&fifo)?;
                    rt.copy_terminal(&c.id, pipe, c.log_path.clone());
                }
            }
        }
        Ok(rt)
    }

    fn tasks(&self) -> TasksClient<containerd_client::tonic::transport::Channel> {
        TasksClient::new(self.api.channel.clone())
    }

    fn containers(&self) -> ContainersClient<containerd_client::tonic::transport::Channel> {
        ContainersClient::new(self.api.channel.clone())
    }

    fn snapshots(&self) -> SnapshotsClient<containerd_client::tonic::transport::Channel> {
        SnapshotsClient::new(self.api.channel.clone())
    }

    /// Where a container's stdin and terminal FIFOs are.
    fn io_dir(&self, id: &str) -> PathBuf {
        self.opts.data_dir.join("io").join(id)
    }

    /// Copies a task's terminal output from its FIFO (see
    /// [`open_terminal_fifo`]) to the log file until the task exits (then
    /// what the FIFO still holds). Call it once the task exists.
    fn copy_terminal(&self, id: &str, mut pipe: tokio::net::unix::pipe::Receiver, log: PathBuf) {
        let (api, id) = (self.api.clone(), id.to_string());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut out = match tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(container = %id, log = %log.display(), error = %e, "terminal output: cannot open the log");
                    return;
                }
            };
            let mut tasks = TasksClient::new(api.channel.clone());
            let exited = tasks.wait(api.req(WaitRequest {
                container_id: id.clone(),
                exec_id: String::new(),
            }));
            tokio::pin!(exited);
            let mut buf = vec![0u8; EXEC_CHUNK];
            loop {
                tokio::select! {
                    r = pipe.read(&mut buf) => match r {
                        Ok(n) if n > 0 => {
                            let _ = out.write_all(&buf[..n]).await;
                        }
                        _ => return,
                    },
                    _ = &mut exited => break,
                }
            }
            // the rest, up to what is there now
            while let Ok(n) = pipe.try_read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = out.write_all(&buf[..n]).await;
            }
            let _ = out.flush().await;
        });
    }

    /// The container's record in containerd (`NotFound` when it has none).
    async fn container(&self, id: &str) -> Result<Container> {
        self.containers()
            .get(self.api.req(GetContainerRequest { id: id.to_string() }))
            .await
            .map_err(|s| {
                if not_found(&s) {
                    RuntimeError::NotFound(id.into())
                } else {
                    other(err("reading the container", s))
                }
            })?
            .into_inner()
            .container
            .ok_or_else(|| RuntimeError::NotFound(id.into()))
    }

    /// The container's labels.
    async fn labels(&self, id: &str) -> Result<HashMap<String, String>> {
        Ok(self.container(id).await?.labels)
    }

    /// Sets the size of a task's (or an exec's) terminal.
    async fn resize(&self, id: &str, exec_id: &str, size: TermSize) {
        if let Err(s) = self
            .tasks()
            .resize_pty(self.api.req(ResizePtyRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                width: u32::from(size.width),
                height: u32::from(size.height),
            }))
            .await
        {
            tracing::debug!(container = id, exec = exec_id, error = %s.message(), "terminal resize");
        }
    }

    /// Waits for a task to exit, then tells the reconciler.
    fn watch(&self, id: &str, uid: &str) {
        let (api, events, id, uid) = (
            self.api.clone(),
            self.events.clone(),
            id.to_string(),
            uid.to_string(),
        );
        tokio::spawn(async move {
            let mut tasks = TasksClient::new(api.channel.clone());
            let _ = tasks
                .wait(api.req(WaitRequest {
                    container_id: id,
                    exec_id: String::new(),
                }))
                .await;
            let _ = events.send(uid);
        });
    }

    async fn info(&self, c: &Container) -> Option<ContainerInfo> {
        let l = &c.labels;
        let state = match self
            .tasks()
            .get(self.api.req(GetRequest {
                container_id: c.id.clone(),
                exec_id: String::new(),
            }))
            .await
        {
            Ok(r) => {
                let p = r.into_inner().process.unwrap_or_default();
                match p.status {
                    1 => State::Created,
                    2 | 4 | 5 => State::Running,
                    _ => State::Exited {
                        code: i32::try_from(p.exit_status).unwrap_or(255),
                        finished_at: ts(p.exited_at.as_ref()).unwrap_or_else(Utc::now),
                        reason: None,
                    },
                }
            }
            Err(s) if not_found(&s) => State::Exited {
                code: l
                    .get("io.korral.exit-code")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(255),
                finished_at: ts(c.updated_at.as_ref()).unwrap_or_else(Utc::now),
                reason: Some("Unknown".into()),
            },
            Err(_) => return None,
        };
        Some(ContainerInfo {
            id: c.id.clone(),
            pod_uid: l.get(labels::POD_UID)?.clone(),
            pod_namespace: l.get(labels::POD_NAMESPACE).cloned().unwrap_or_default(),
            pod_name: l.get(labels::POD_NAME).cloned().unwrap_or_default(),
            name: l.get(labels::CONTAINER)?.clone(),
            attempt: l
                .get(labels::ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            image: c.image.clone(),
            image_id: l.get("io.korral.image.id").cloned().unwrap_or_default(),
            state,
            started_at: l
                .get(labels::STARTED)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc)),
            log_path: PathBuf::from(l.get("io.korral.log").cloned().unwrap_or_default()),
        })
    }

    fn pod_files(
        &self,
        sb: &PodSandbox,
        ip: &str,
    ) -> std::result::Result<Vec<(&'static str, String)>, String> {
        let etc = sb.dir.join("etc");
        std::fs::create_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
        let hosts = format!(
            "# Kubernetes-managed hosts file (korral).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{}\n",
            sb.hostname
        );
        let resolv = match &sb.resolv_conf {
            Some(r) => r.clone(),
            None => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        };
        let mut out = Vec::new();
        for (dest, name, body) in [
            ("/etc/hosts", "hosts", hosts),
            ("/etc/resolv.conf", "resolv.conf", resolv),
            ("/etc/hostname", "hostname", format!("{}\n", sb.hostname)),
        ] {
            let p = etc.join(name);
            std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
            out.push((dest, p.to_string_lossy().into_owned()));
        }
        Ok(out)
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        match self
            .tasks()
            .kill(self.api.req(KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal,
                all,
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if not_found(&s) || s.code() == Code::FailedPrecondition => Ok(()),
            Err(s) => Err(other(err(&format!("signal {signal} to {id}"), s))),
        }
    }

    async fn wait_exit(&self, id: &str, limit: Duration) -> bool {
        let mut tasks = self.tasks();
        let wait = tasks.wait(self.api.req(WaitRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        }));
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

#[async_trait::async_trait]
impl Runtime for Containerd {
    fn kind(&self) -> &'static str {
        "containerd"
    }

    async fn version(&self) -> String {
        let mut v = VersionClient::new(self.api.channel.clone());
        match v.version(()).await {
            Ok(r) => format!("containerd://{}", r.into_inner().version),
            Err(_) => "containerd://unknown".into(),
        }
    }

    fn has_images(&self) -> bool {
        true
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        Ok(image::resolve(&self.api, reference)
            .await
            .map_err(other)?
            .map(|r| r.id))
    }

    async fn images(&self) -> Result<Vec<ImageInfo>> {
        Ok(image_store::list(&self.api)
            .await
            .map_err(other)?
            .iter()
            .map(image_store::StoredImage::info)
            .collect())
    }

    async fn image_fs(&self) -> Result<ImageFs> {
        image_store::image_fs(&self.api, &self.opts.snapshotter)
            .await
            .map_err(other)
    }

    async fn remove_image(&self, id: &str) -> Result<()> {
        image_store::remove(&self.api, &self.opts.snapshotter, id)
            .await
            .map_err(other)
    }

    async fn pull_image(&self, reference: &str, keyring: &Keyring) -> Result<PulledImage> {
        self.puller
            .pull(reference, keyring)
            .await
            .map(|p| PulledImage {
                id: p.id,
                size: p.size,
            })
            .map_err(other)
    }

    async fn run_sandbox(&self, sb: &PodSandbox) -> Result<String> {
        match (&self.network, sb.host_network) {
            (Some(net), false) => net
                .setup(&sb.uid)
                .await
                .map(|ip| ip.to_string())
                .map_err(other),
            _ => Ok(crate::machine::address_towards("https://1.1.1.1:443")
                .map(|i| i.to_string())
                .unwrap_or_else(|| "127.0.0.1".into())),
        }
    }

    async fn remove_sandbox(&self, uid: &str) -> Result<()> {
        if let Some(net) = &self.network {
            net.teardown(uid).await;
        }
        Ok(())
    }

    async fn start(&self, sb: &PodSandbox, c: &ContainerConfig) -> Result<ContainerInfo> {
        let image = image::resolve(&self.api, &c.image)
            .await
            .map_err(other)?
            .ok_or_else(|| RuntimeError::ImageNotPresent(c.image.clone()))?;
        image::unpack(&self.api, &self.opts.snapshotter, &image)
            .await
            .map_err(other)?;
        let id = format!("{:016x}", rand::random::<u64>());
        let ip = c.pod_ip.clone().unwrap_or_default();
        let netns = match (&self.network, sb.host_network) {
            (Some(_), false) => Some(network::netns_path(&sb.uid).to_string_lossy().into_owned()),
            _ => None,
        };
        let files = spec::PodFiles {
            hostname: &sb.hostname,
            etc: self.pod_files(sb, &ip).map_err(other)?,
            netns,
            cgroup: format!("/korral-{}/{id}", self.opts.node),
        };
        let mut oci = spec::build(c, &image, &files);
        if c.io.tty {
            on_terminal(&mut oci["process"]);
        }
        if spec::args(c, &image).is_empty() {
            return Err(RuntimeError::Invalid(format!(
                "container {:?}: no command and the image has no entrypoint or cmd",
                c.name
            )));
        }
        let mounts = self
            .snapshots()
            .prepare(self.api.req(PrepareSnapshotRequest {
                snapshotter: self.opts.snapshotter.clone(),
                key: id.clone(),
                parent: image.chain_id.clone(),
                labels: Default::default(),
            }))
            .await
            .map_err(|s| other(err("preparing the container snapshot", s)))?
            .into_inner()
            .mounts;
        let mut l: HashMap<String, String> = HashMap::new();
        l.insert(labels::NODE.into(), self.opts.node.clone());
        l.insert(labels::POD_UID.into(), c.pod_uid.clone());
        l.insert(labels::POD_NAMESPACE.into(), c.pod_namespace.clone());
        l.insert(labels::POD_NAME.into(), c.pod_name.clone());
        l.insert(labels::CONTAINER.into(), c.name.clone());
        l.insert(labels::ATTEMPT.into(), c.attempt.to_string());
        l.insert(labels::STARTED.into(), Utc::now().to_rfc3339());
        l.insert(labels::POD_IP.into(), ip);
        l.insert("io.korral.image.id".into(), image.id.clone());
        l.insert(
            "io.korral.log".into(),
            c.log_path.to_string_lossy().into_owned(),
        );
        if c.io.stdin {
            l.insert(STDIN_LABEL.into(), "true".into());
        }
        let container = Container {
            id: id.clone(),
            labels: l,
            image: image::normalize_ref(&c.image),
            runtime: Some(CRuntime {
                name: "io.containerd.runc.v2".into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE.into(),
                value: serde_json::to_vec(&oci).map_err(|e| other(e.to_string()))?,
            }),
            snapshotter: self.opts.snapshotter.clone(),
            snapshot_key: id.clone(),
            ..Default::default()
        };
        let cleanup = |me: &Self, id: String| {
            let (api, snap) = (me.api.clone(), me.opts.snapshotter.clone());
            async move {
                let _ = ContainersClient::new(api.channel.clone())
                    .delete(api.req(DeleteContainerRequest { id: id.clone() }))
                    .await;
                let _ = SnapshotsClient::new(api.channel.clone())
                    .remove(api.req(RemoveSnapshotRequest {
                        snapshotter: snap,
                        key: id,
                    }))
                    .await;
            }
        };
        if let Err(s) = self
            .containers()
            .create(self.api.req(CreateContainerRequest {
                container: Some(container),
            }))
            .await
        {
            cleanup(self, id.clone()).await;
            return Err(other(err("creating the container", s)));
        }
        if let Some(parent) = c.log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| other(format!("{}: {e}", parent.display())))?;
        }
        let log_uri = format!("file://{}", c.log_path.display());
        let io_dir = self.io_dir(&id);
        let fifos = || -> std::io::Result<(String, Option<PathBuf>)> {
            if !(c.io.stdin || c.io.tty) {
                return Ok((String::new(), None));
            }
            std::fs::create_dir_all(&io_dir)?;
            let stdin = if c.io.stdin {
                let p = io_dir.join(STDIN_FIFO);
                make_fifo(&p)?;
                p.display().to_string()
            } else {
                String::new()
            };
            let tty = if c.io.tty {
                let p = io_dir.join(TTY_FIFO);
                make_fifo(&p)?;
                Some(p)
            } else {
                None
            };
            Ok((stdin, tty))
        };
        let (stdin, tty) = match fifos() {
            Ok(x) => x,
            Err(e) => {
                cleanup(self, id.clone()).await;
                let _ = std::fs::remove_dir_all(&io_dir);
                return Err(other(format!("{}: {e}", io_dir.display())));
            }
        };
        // a terminal's output comes through its FIFO, copied to the log by the daemon
        // (open before the task: the shim's open waits for a reader)
        let (stdout, stderr, terminal) = match &tty {
            Some(fifo) => match open_terminal_fifo(fifo) {
                Ok(pipe) => (fifo.display().to_string(), String::new(), Some(pipe)),
                Err(e) => {
                    cleanup(self, id.clone()).await;
                    let _ = std::fs::remove_dir_all(&io_dir);
                    return Err(other(e));
                }
            },
            None => (log_uri.clone(), log_uri, None),
        };
        let created = self
            .tasks()
            .create(self.api.req(CreateTaskRequest {
                container_id: id.clone(),
                rootfs: mounts,
                stdin,
                stdout,
                stderr,
                terminal: c.io.tty,
                ..Default::default()
            }))
            .await;
        if let Err(s) = created {
            cleanup(self, id.clone()).await;
            let _ = std::fs::remove_dir_all(&io_dir);
            return Err(other(err("creating the task", s)));
        }
        if let Some(pipe) = terminal {
            self.copy_terminal(&id, pipe, c.log_path.clone());
        }
        if let Err(s) = self
            .tasks()
            .start(self.api.req(StartRequest {
                container_id: id.clone(),
                exec_id: String::new(),
            }))
            .await
        {
            let _ = self
                .tasks()
                .delete(self.api.req(DeleteTaskRequest {
                    container_id: id.clone(),
                }))
                .await;
            cleanup(self, id.clone()).await;
            return Err(other(err("starting the task", s)));
        }
        self.watch(&id, &c.pod_uid);
        let got = self.container(&id).await?;
        self.info(&got).await.ok_or(RuntimeError::NotFound(id))
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        self.kill(id, 15, false).await?;
        if !self.wait_exit(id, grace).await {
            tracing::info!(container = id, "grace period over; sending SIGKILL");
            self.kill(id, 9, true).await?;
            self.wait_exit(id, Duration::from_secs(10)).await;
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let _ = self.kill(id, 9, true).await;
        self.wait_exit(id, Duration::from_secs(10)).await;
        match self
            .tasks()
            .delete(self.api.req(DeleteTaskRequest {
                container_id: id.to_string(),
            }))
            .await
        {
            Ok(_) => {}
            Err(s) if not_found(&s) => {}
            Err(s) => return Err(other(err(&format!("deleting task {id}"), s))),
        }
        match self
            .containers()
            .delete(self.api.req(DeleteContainerRequest { id: id.to_string() }))
            .await
        {
            Ok(_) => {}
            Err(s) if not_found(&s) => {}
            Err(s) => return Err(other(err(&format!("deleting container {id}"), s))),
        }
        let _ = self
            .snapshots()
            .remove(self.api.req(RemoveSnapshotRequest {
                snapshotter: self.opts.snapshotter.clone(),
                key: id.to_string(),
            }))
            .await;
        let _ = std::fs::remove_dir_all(self.io_dir(id));
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>> {
        let filter = format!("labels.\"{}\"=={}", labels::NODE, self.opts.node);
        let cs = self
            .containers()
            .list(self.api.req(ListContainersRequest {
                filters: vec![filter],
            }))
            .await
            .map_err(|s| other(err("listing containers", s)))?
            .into_inner()
            .containers;
        let mut out = Vec::new();
        for c in &cs {
            if let Some(i) = self.info(c).await {
                out.push(i);
            }
        }
        Ok(out)
    }

    async fn exec_streaming(
        &self,
        id: &str,
        command: &[String],
        streams: ExecStreams,
        timeout: Duration,
    ) -> Result<i32> {
        let c = self.container(id).await?;
        let cspec: serde_json::Value = c
            .spec
            .as_ref()
            .and_then(|a| serde_json::from_slice(&a.value).ok())
            .unwrap_or_default();
        let mut process = spec::exec_process(&cspec, command);
        let exec_id = format!("exec-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        let ExecStreams {
            stdin,
            output,
            tty,
            mut resize,
        } = streams;
        if tty {
            on_terminal(&mut process);
        }
        // stdio through FIFOs the shim opens: stdin fed as it arrives, stdout and stderr read apart
        let fifo = |name: &str| -> Result<PathBuf> {
            let p = std::env::temp_dir().join(format!("korral-{exec_id}.{name}"));
            make_fifo(&p).map_err(|e| other(format!("creating {}: {e}", p.display())))?;
            Ok(p)
        };
        // on a terminal, stdout carries all of the output: no stderr
        let out_fifo = fifo("out")?;
        let err_fifo = if tty { None } else { Some(fifo("err")?) };
        let in_fifo = match stdin {
            Some(_) => Some(fifo("in")?),
            None => None,
        };
        let wraps: [fn(bytes::Bytes) -> ExecChunk; 2] = [ExecChunk::Stdout, ExecChunk::Stderr];
        let readers = [Some(out_fifo.clone()), err_fifo.clone()]
            .into_iter()
            .zip(wraps)
            .filter_map(|(p, wrap)| Some((p?, wrap)))
            .map(|(p, wrap)| {
                let output = output.clone();
                tokio::task::spawn_blocking(move || stream_fifo(&p, wrap, &output))
            })
            .collect::<Vec<_>>();
        let release = |fifos: [Option<&PathBuf>; 2]| {
            use std::os::unix::fs::OpenOptionsExt;
            // a writer of our own ends a reader still waiting for the shim's
            for p in fifos.into_iter().flatten() {
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(p);
            }
        };
        let remove_fifos = || {
            for p in [Some(&out_fifo), err_fifo.as_ref(), in_fifo.as_ref()]
                .into_iter()
                .flatten()
            {
                let _ = std::fs::remove_file(p);
            }
        };
        let body = serde_json::to_vec(&process).map_err(|e| other(e.to_string()))?;
        let created = self
            .tasks()
            .exec(
                self.api.req(ExecProcessRequest {
                    container_id: id.to_string(),
                    stdin: in_fifo
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    stdout: out_fifo.display().to_string(),
                    stderr: err_fifo
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    terminal: tty,
                    spec: Some(prost_types::Any {
                        type_url: PROCESS_TYPE.into(),
                        value: body,
                    }),
                    exec_id: exec_id.clone(),
                }),
            )
            .await;
        if let Err(e) = created {
            release([Some(&out_fifo), err_fifo.as_ref()]);
            remove_fifos();
            return Err(other(err("exec", e)));
        }
        let session = async {
            let (mut t1, mut t2) = (self.tasks(), self.tasks());
            let wait = t1.wait(self.api.req(WaitRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }));
            let start = t2.start(self.api.req(StartRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }));
            let start_and_feed = async {
                start.await.map_err(|s| other(err("starting exec", s)))?;
                // a terminal is resized once the process runs, as sizes arrive
                let sizes = async {
                    if let Some(rx) = resize.as_mut() {
                        while let Some(size) = rx.recv().await {
                            self.resize(id, &exec_id, size).await;
                        }
                    }
                };
                // stdin once the shim has the FIFO's read end (it opens it while starting),
                // chunk by chunk as it arrives; its end closes the command's input (a
                // terminal's input has no end of its own: ^D is typed)
                let feed = async {
                    if let (Some(path), Some(input)) = (in_fifo.as_deref(), stdin) {
                        match open_fifo_writer(path).await {
                            Ok(pipe) => feed_input(input, pipe).await,
                            Err(e) => tracing::warn!(error = %e, "exec stdin"),
                        }
                        if !tty {
                            let _ = TasksClient::new(self.api.channel.clone())
                                .close_io(self.api.req(CloseIoRequest {
                                    container_id: id.to_string(),
                                    exec_id: exec_id.clone(),
                                    stdin: true,
                                }))
                                .await;
                        }
                    }
                };
                tokio::join!(feed, sizes);
                Ok::<(), RuntimeError>(())
            };
            tokio::pin!(wait, start_and_feed);
            let mut started = false;
            loop {
                tokio::select! {
                    // Wait first, so it is registered before Start and a fast exit is not missed;
                    // the exit ends the session, fed or not (a command need not read all its input)
                    biased;
                    w = &mut wait => break w
                        .map(|r| r.into_inner().exit_status)
                        .map_err(|s| other(err("waiting for exec", s))),
                    s = &mut start_and_feed, if !started => {
                        s?;
                        started = true;
                    }
                }
            }
        };
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, session) => r.unwrap_or_else(|_| {
                Err(other(format!("exec {command:?}: timed out after {timeout:?}")))
            }),
            () = output.closed() => Err(other(format!(
                "exec {command:?}: the session went away; the command was killed"
            ))),
        };
        if result.is_err() {
            let _ = self
                .tasks()
                .kill(self.api.req(KillRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                    signal: 9,
                    all: false,
                }))
                .await;
        }
        let _ = self
            .tasks()
            .delete_process(self.api.req(DeleteProcessRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }))
            .await;
        // the shim closed its ends when the process went; if it never opened them (a failed
        // start), a writer of our own ends the readers' wait
        release([Some(&out_fifo), err_fifo.as_ref()]);
        for r in readers {
            let _ = r.await;
        }
        remove_fifos();
        result.map(|code| i32::try_from(code).unwrap_or(255))
    }

    async fn stdin_ready(&self, id: &str) -> Result<()> {
        let labels = self.labels(id).await?;
        if labels.get(STDIN_LABEL).map(String::as_str) != Some("true") {
            return Err(RuntimeError::Invalid(format!(
                "container {id} was started without stdin: true in its spec; restart it with stdin: true to attach to its stdin"
            )));
        }
        let dir = self.io_dir(id);
        if dir.join(STDIN_CLOSED).exists() {
            return Err(RuntimeError::Invalid(
                "its stdin was closed when the first attach session ended (stdinOnce: true); it stays closed until the container restarts".into(),
            ));
        }
        open_stdin(&dir.join(STDIN_FIFO)).map(drop)
    }

    async fn attach_input(&self, id: &str, input: AttachInput) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let AttachInput {
            mut stdin,
            mut resize,
            close_stdin,
        } = input;
        let dir = self.io_dir(id);
        let mut pipe = match stdin {
            Some(_) => Some(open_stdin(&dir.join(STDIN_FIFO))?),
            None => None,
        };
        while stdin.is_some() || resize.is_some() {
            tokio::select! {
                chunk = next_chunk(&mut stdin) => match (chunk, pipe.as_mut()) {
                    (Some(data), Some(p)) => {
                        if let Err(e) = p.write_all(&data).await {
                            return Err(other(format!(
                                "writing to the stdin of container {id} (did it stop?): {e}"
                            )));
                        }
                    }
                    (Some(_), None) => {}
                    (None, _) => {
                        stdin = None;
                        pipe = None;
                        if close_stdin {
                            tracing::info!(container = id, "stdinOnce: closing the container's stdin");
                            let _ = std::fs::write(dir.join(STDIN_CLOSED), b"");
                            self.tasks()
                                .close_io(self.api.req(CloseIoRequest {
                                    container_id: id.to_string(),
                                    exec_id: String::new(),
                                    stdin: true,
                                }))
                                .await
                                .map_err(|s| other(err("closing the container's stdin", s)))?;
                        }
                    }
                },
                size = next_size(&mut resize) => match size {
                    Some(size) => self.resize(id, "", size).await,
                    None => resize = None,
                },
            }
        }
        Ok(())
    }

    fn events(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }

    /// The container's cgroup (`cgroupsPath` `/korral-<node>/<id>`, v1 or v2).
    async fn usage(&self, id: &str) -> Option<crate::runtime::ContainerUsage> {
        let path = format!("/korral-{}/{id}", self.opts.node);
        tokio::task::spawn_blocking(move || {
            crate::stats::cgroup::usage(std::path::Path::new("/sys/fs/cgroup"), &path)
        })
        .await
        .ok()
        .flatten()
    }
}

/// The FIFO in a container's io directory the shim reads its stdin from.
const STDIN_FIFO: &str = "stdin";

/// The FIFO in a container's io directory its terminal's output comes through.
const TTY_FIFO: &str = "stdout";

/// The file in a container's io directory that says its stdin was closed (`stdinOnce`).
const STDIN_CLOSED: &str = "stdin-closed";

/// The label of a container created with `stdin: true`.
const STDIN_LABEL: &str = "io.korral.stdin";

/// Puts a process (its OCI spec) on a terminal, with `TERM=xterm` unless it
/// sets `TERM` (as containerd's CRI does).
fn on_terminal(process: &mut serde_json::Value) {
    process["terminal"] = serde_json::Value::Bool(true);
    if let Some(env) = process["env"].as_array_mut()
        && !env
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with("TERM=")))
    {
        env.push(serde_json::Value::from("TERM=xterm"));
    }
}

/// Opens a task's terminal FIFO for reading — and writing, so that reads
/// never see an end before the shim opens it, nor between two daemons.
fn open_terminal_fifo(
    fifo: &std::path::Path,
) -> std::result::Result<tokio::net::unix::pipe::Receiver, String> {
    tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(fifo)
        .map_err(|e| format!("{}: {e}", fifo.display()))
}

/// Opens a task's stdin FIFO for writing: the shim holds its read end while
/// the task runs (without a reader the open fails at once).
fn open_stdin(path: &std::path::Path) -> Result<tokio::net::unix::pipe::Sender> {
    tokio::net::unix::pipe::OpenOptions::new()
        .open_sender(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) | Some(libc::ENOENT) => RuntimeError::Invalid(format!(
                "the container is not running (nothing reads {})",
                path.display()
            )),
            _ => other(format!("{}: {e}", path.display())),
        })
}

/// The next chunk of an optional input channel (never, without one).
async fn next_chunk(
    rx: &mut Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
) -> Option<bytes::Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next terminal size of an optional channel (never, without one).
async fn next_size(rx: &mut Option<tokio::sync::mpsc::Receiver<TermSize>>) -> Option<TermSize> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Creates a FIFO (mode 0600).
fn make_fifo(path: &std::path::Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Streams a FIFO to `output` as `wrap`ped chunks until every writer has
/// closed it (blocks until one opens it: run it on a blocking thread). When
/// nobody receives any more, the rest is read and dropped.
fn stream_fifo(
    path: &std::path::Path,
    wrap: fn(bytes::Bytes) -> ExecChunk,
    output: &tokio::sync::mpsc::Sender<ExecChunk>,
) {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return;
    };
    let mut buf = vec![0u8; EXEC_CHUNK];
    let mut open = true;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if open
                    && output
                        .blocking_send(wrap(bytes::Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                {
                    open = false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// How long the shim has to open an exec's stdin FIFO after the start.
const FIFO_OPEN_WAIT: Duration = Duration::from_secs(10);

/// Opens the write end of a FIFO whose reader (the shim) is opening it:
/// non-blocking, so while nobody reads it the open fails (ENXIO) and is
/// tried again, up to [`FIFO_OPEN_WAIT`].
async fn open_fifo_writer(
    path: &std::path::Path,
) -> std::io::Result<tokio::net::unix::pipe::Sender> {
    let deadline = tokio::time::Instant::now() + FIFO_OPEN_WAIT;
    loop {
        match tokio::net::unix::pipe::OpenOptions::new().open_sender(path) {
            Ok(pipe) => return Ok(pipe),
            Err(e)
                if e.raw_os_error() == Some(libc::ENXIO)
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Imports an image archive into containerd (`korral image import`).
pub async fn import(
    address: &std::path::Path,
    namespace: &str,
    tar: &[u8],
    unpack_with: Option<&str>,
) -> std::result::Result<Vec<String>, String> {
    let api = Api::connect(address, namespace).await?;
    let names = image::import(&api, tar).await?;
    if let Some(snapshotter) = unpack_with {
        for n in &names {
            if let Some(r) = image::resolve(&api, n).await? {
                image::unpack(&api, snapshotter, &r).await?;
            }
        }
    }
    Ok(names)
}

/// Pushes the image `name` of containerd's store to a registry (`korral image push`).
pub async fn push_image(
    address: &std::path::Path,
    namespace: &str,
    name: &str,
    dest: &push::Destination,
) -> std::result::Result<push::Pushed, String> {
    let api = Api::connect(address, namespace).await?;
    let top = image::target(&api, name).await?.ok_or_else(|| {
        format!(
            "no image {} in containerd namespace {namespace}",
            image::normalize_ref(name)
        )
    })?;
    push::push(&push::Source::Containerd(&api), &top, dest).await
}

/// Pushes an image of an archive (OCI layout or `docker save`) to a
/// registry: the one named `name`, or the archive's only image.
pub async fn push_archive(
    tar: &[u8],
    name: Option<&str>,
    dest: &push::Destination,
) -> std::result::Result<push::Pushed, String> {
    let archive = image::read_archive(tar)?;
    let top = match name {
        Some(n) => {
            let want = image::normalize_ref(n);
            archive
                .images
                .iter()
                .find(|(i, _)| *i == want)
                .map(|(_, d)| d.clone())
                .ok_or_else(|| format!("the archive has no image {want}"))?
        }
        None => match archive.images.as_slice() {
            [(_, d)] => d.clone(),
            many => {
                let names: Vec<&str> = many.iter().map(|(n, _)| n.as_str()).collect();
                return Err(format!(
                    "the archive holds several images ({}); name one with --image",
                    names.join(", ")
                ));
            }
        },
    };
    push::push(&push::Source::Archive(&archive.blobs), &top, dest).await
}
