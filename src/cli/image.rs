//! `korral image`: build a tiny busybox image archive from Debian's
//! busybox-static (plus any host files asked for), import image archives (OCI layout or docker save)
//! into containerd — no registry is needed — and push images from containerd or an archive to a registry.

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

/// Arguments of `korral image push`.
#[derive(clap::Args)]
pub struct PushArgs {
    /// The image to push: its name in containerd's store (or, with `--archive`, in the archive).
    image: String,
    /// Where to push it (`host[:port]/repository[:tag]`; default: the image's own name).
    destination: Option<String>,
    /// Read the image from this archive (OCI layout or `docker save`) instead of containerd.
    #[arg(long, value_name = "FILE")]
    archive: Option<PathBuf>,
    /// containerd's gRPC socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_address: PathBuf,
    /// The containerd namespace (the node's `--containerd-namespace`).
    #[arg(long, default_value = "korral")]
    namespace: String,
    /// User name for the registry (HTTP basic, or the token flow).
    #[arg(long)]
    username: Option<String>,
    /// Password for the registry.
    #[arg(long, env = "KORRAL_REGISTRY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// A docker config file (`~/.docker/config.json`, or a pull secret's `.dockerconfigjson`) to
    /// take the destination's credentials from.
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the registry, besides the system's.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Do not verify the registry's certificate.
    #[arg(long)]
    insecure_skip_verify: bool,
    /// Speak plain HTTP to the registry.
    #[arg(long)]
    plain_http: bool,
}

fn push_destination(
    args: &PushArgs,
) -> Result<node::runtime::containerd::push::Destination, String> {
    use node::runtime::auth::{Credential, Keyring};
    let reference = args
        .destination
        .clone()
        .unwrap_or_else(|| args.image.clone());
    let mut host = node::runtime::containerd::registry_config::HostConfig::default();
    if let Some(ca) = &args.ca_file {
        host.ca_pem = Some(std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?);
    }
    host.insecure_skip_verify = args.insecure_skip_verify;
    let password = if args.password_stdin {
        let mut p = String::new();
        std::io::stdin()
            .read_line(&mut p)
            .map_err(|e| format!("reading the password: {e}"))?;
        Some(p.trim_end_matches(['\r', '\n']).to_string())
    } else {
        args.password.clone()
    };
    host.auth = match (&args.username, password, &args.docker_config) {
        (Some(u), Some(p), _) => Some(Credential::Basic {
            username: u.clone(),
            password: p,
        }),
        (Some(_), None, _) | (None, Some(_), _) => {
            return Err("give both --username and a password".into());
        }
        (None, None, Some(file)) => {
            let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut k = Keyring::new();
            k.add_docker_config(&body)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let full = node::runtime::containerd::image::normalize_ref(&reference);
            let (registry, rest) = full.split_once('/').unwrap_or((&full, ""));
            let repository = rest.split([':', '@']).next().unwrap_or("");
            k.lookup(registry, repository).into_iter().next()
        }
        (None, None, None) => None,
    };
    Ok(node::runtime::containerd::push::Destination {
        reference,
        host,
        plain_http: args.plain_http,
    })
}

/// Runs `korral image push`.
pub fn push(args: PushArgs) -> ExitCode {
    let fail = |e: String| {
        eprintln!("korral image push: {e}");
        ExitCode::from(output::ERROR)
    };
    let dest = match push_destination(&args) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let pushed = match &args.archive {
        Some(file) => match std::fs::read(file) {
            Ok(tar) => rt.block_on(node::runtime::containerd::push_archive(
                &tar,
                Some(&args.image),
                &dest,
            )),
            Err(e) => Err(format!("{}: {e}", file.display())),
        },
        None => rt.block_on(node::runtime::containerd::push_image(
            &args.containerd_address,
            &args.namespace,
            &args.image,
            &dest,
        )),
    };
    match pushed {
        Ok(p) => {
            println!(
                "pushed {} ({}; {} blobs uploaded, {} already there)",
                dest.reference, p.digest, p.uploaded, p.present
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
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
