//! `korral image`: build a tiny busybox image archive from Debian's
//! busybox-static (plus any host files asked for), and import image archives (OCI layout or docker save)
//! into containerd — no registry is needed.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::output;

/// Arguments of `korral image import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// The archive (OCI image layout tarball or `docker save` output).
    file: PathBuf,
    /// containerd's gRPC socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_address: PathBuf,
    /// The containerd namespace (the node's `--containerd-namespace`).
    #[arg(long, default_value = "korral")]
    namespace: String,
    /// Also unpack the layers for this snapshotter (`none` to skip).
    #[arg(long, default_value = "overlayfs")]
    snapshotter: String,
}

/// Arguments of `korral image build-busybox`.
#[derive(clap::Args)]
pub struct BuildBusyboxArgs {
    /// Where to write the OCI archive.
    out: PathBuf,
    /// The busybox binary (Debian's busybox-static).
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// Image names (repeatable).
    #[arg(long = "tag", default_values = ["busybox:latest"])]
    tags: Vec<String>,
    /// Also copy a file of this machine into the image, as `SOURCE:DEST`
    /// (DEST absolute; parent directories are made; repeatable), e.g. a
    /// static kubectl: `--add /usr/bin/kubectl:/usr/local/bin/kubectl`.
    #[arg(long = "add", value_name = "SOURCE:DEST")]
    add: Vec<node::runtime::containerd::busybox::ExtraFile>,
}

/// Runs `korral image import`.
pub fn import(args: ImportArgs) -> ExitCode {
    let tar = match std::fs::read(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("korral image import: {}: {e}", args.file.display());
            return ExitCode::from(output::ERROR);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("korral image import: {e}");
            return ExitCode::from(output::ERROR);
        }
    };
    let snap = Some(args.snapshotter.as_str()).filter(|s| *s != "none");
    match rt.block_on(node::runtime::containerd::import(
        &args.containerd_address,
        &args.namespace,
        &tar,
        snap,
    )) {
        Ok(names) => {
            for n in names {
                println!("imported {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("korral image import: {e}");
            ExitCode::from(output::ERROR)
        }
    }
}

/// Runs `korral image build-busybox`.
pub fn build_busybox(args: BuildBusyboxArgs) -> ExitCode {
    match node::runtime::containerd::busybox::build(&args.busybox, &args.tags, &args.add).and_then(
        |tar| std::fs::write(&args.out, tar).map_err(|e| format!("{}: {e}", args.out.display())),
    ) {
        Ok(()) => {
            println!("wrote {} ({})", args.out.display(), args.tags.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("korral image build-busybox: {e}");
            ExitCode::from(output::ERROR)
        }
    }
}
