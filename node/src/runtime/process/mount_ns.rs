//! Mount namespaces for the process runtime when the node daemon is root:
//! each container process gets its own, where every volume is bind-mounted
//! at its `mountPath` — so unmodified programs find their files where the
//! pod spec says (`/var/run/secrets/kubernetes.io/serviceaccount/token` for
//! in-cluster clients) instead of having paths rewritten.
//!
//! What the shim does in the container's process between fork and exec
//! ([`enter`]): `unshare(CLONE_NEWNS)`; `/` made recursively *slave*
//! (the host's later mounts still reach the container, nothing the
//! container mounts reaches the host — runc's default `rslave`); then each
//! volume, parents before children, bind-mounted (recursively) at its path,
//! remounted read-only when `readOnly: true`; then `chdir` to the working
//! directory. `kubectl exec` and exec probes join the container's namespace
//! with `setns` ([`Joined`]).
//!
//! Missing mount points are never created on the host's file system.
//! Where a mount path does not exist (`/var/run/secrets/...` on most hosts),
//! its deepest existing ancestor is *mimicked* inside the namespace, as
//! snapd does for read-only directories: a tmpfs with that directory's
//! owner and mode, holding a recursive bind mount of each of its entries
//! (symlinks copied), is moved over it — the container sees the directory
//! as it was, plus the new mount point. The alternatives are worse: a mkdir
//! on the host leaves files behind and races other pods; a plain tmpfs over
//! the ancestor hides what the host has there (`/run` holds the resolver's
//! `resolv.conf` on many systems). The one difference a container can see:
//! a file it creates directly in a mimicked directory lives in the tmpfs and
//! goes with the namespace. A mount point inside a writable volume is
//! created in the volume (as runc does); inside a directory made here, on
//! the tmpfs. The tmpfs is prepared on a scratch directory (under the
//! container's record directory, empty on the host) and moved into place;
//! a mimic of `/` itself becomes the root with `MS_MOVE` + `chroot`, as
//! runc's `msMoveRoot`.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

/// One volume to bind-mount in a container's namespace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BindMount {
    /// The node path (a directory or a file).
    pub source: PathBuf,
    /// The `mountPath` in the container.
    pub target: String,
    /// Remount read-only.
    pub read_only: bool,
}

/// What a container's mount namespace holds: written by the daemon next to
/// the container's record, read by the shim.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The volumes, in the pod spec's order.
    pub mounts: Vec<BindMount>,
    /// The container's working directory (`/` when unset).
    pub working_dir: Option<String>,
}

/// Checks that this process may create mount namespaces, in a short-lived
/// child (`unshare` and the slave remount of `/`, nothing else).
pub fn probe() -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: between fork and _exit the child makes only async-signal-safe
    // system calls (unshare, mount, _exit); it never reaches exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            let root = c"/";
            let flags = libc::MS_REC | libc::MS_SLAVE;
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            libc::_exit(0)
        });
    }
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("the probe ended with {status}")))
    }
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: NUL byte in path", p.display()),
        )
    })
}

/// The result of a system call returning 0 on success.
fn sys(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `e` with `what` in front, keeping its kind.
fn context(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstring).transpose()?;
    let target = cstring(target)?;
    let fstype = fstype.map(|f| cstring(Path::new(f))).transpose()?;
    let data = data.map(|d| cstring(Path::new(d))).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, or null.
    sys(unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    })
}

fn chdir(dir: &Path) -> io::Result<()> {
    let c = cstring(dir)?;
    // SAFETY: a NUL-terminated path.
    sys(unsafe { libc::chdir(c.as_ptr()) })
}

/// A `mountPath` as a clean absolute path (no `..`, no `.`).
pub fn target_path(target: &str) -> io::Result<PathBuf> {
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("mount path {target:?} {why}"),
        )
    };
    if !target.starts_with('/') {
        return Err(invalid("is not absolute"));
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(target).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return Err(invalid("contains '..'")),
        }
    }
    Ok(out)
}

/// Enters a new mount namespace and sets up `plan` in it; `scratch` is an
/// empty directory (absolute, canonical) where mimicked directories are
/// prepared. Runs in the container's process between fork and exec, in a
/// single-threaded shim (so allocating is safe); errors say what failed.
pub fn enter(plan: &Plan, scratch: &Path) -> io::Result<()> {
    // SAFETY: no pointers.
    sys(unsafe { libc::unshare(libc::CLONE_NEWNS) }).map_err(context("unshare(CLONE_NEWNS)"))?;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_SLAVE,
        None,
    )
    .map_err(context("making / a recursive slave"))?;
    let mut mounts = Vec::with_capacity(plan.mounts.len());
    for m in &plan.mounts {
        mounts.push((target_path(&m.target)?, m));
    }
    // parents before children (stable: the spec's order otherwise)
    mounts.sort_by_key(|(t, _)| t.components().count());
    let mut made = Made::default();
    for (target, m) in mounts {
        bind(&m.source, &target, m.read_only, scratch, &mut made)
            .map_err(context(format!("volume at {}", m.target)))?;
    }
    let wd = plan.working_dir.as_deref().unwrap_or("/");
    chdir(Path::new(wd)).map_err(context(format!("working directory {wd}")))
}

/// Directories whose contents belong to the pod, where mount points may be
/// created directly.
#[derive(Default)]
struct Made {
    /// Mimicked directories (their own entries live in a tmpfs).
    mimicked: Vec<PathBuf>,
    /// Directories made on a tmpfs, and writable volumes: everything under them.
    trees: Vec<PathBuf>,
}

impl Made {
    fn owns(&self, dir: &Path) -> bool {
        self.mimicked.iter().any(|m| m == dir) || self.trees.iter().any(|t| dir.starts_with(t))
    }
}

fn bind(
    source: &Path,
    target: &Path,
    read_only: bool,
    scratch: &Path,
    made: &mut Made,
) -> io::Result<()> {
    let is_dir = std::fs::metadata(source)
        .map_err(context(format!("node path {}", source.display())))?
        .is_dir();
    mount_point(target, is_dir, scratch, made)?;
    mount(
        Some(source),
        target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(context(format!("bind-mounting {}", source.display())))?;
    if read_only {
        // a bind remount keeps the flags it is given: carry over nosuid/nodev/noexec
        let c = cstring(target)?;
        // SAFETY: an all-zero statvfs is valid; `c` is NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        sys(unsafe { libc::statvfs(c.as_ptr(), &mut st) })
            .map_err(context("statvfs of the bind mount"))?;
        let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
        for (st_flag, ms_flag) in [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
        ] {
            if st.f_flag & st_flag != 0 {
                flags |= ms_flag;
            }
        }
        mount(None, target, None, flags, None).map_err(context("remounting read-only"))?;
    } else if is_dir && let Ok(t) = std::fs::canonicalize(target) {
        made.trees.push(t);
    }
    Ok(())
}

/// Makes sure `target` exists as a directory (`is_dir`) or a file, creating
/// it — never on the host's file system — when it does not.
fn mount_point(target: &Path, is_dir: bool, scratch: &Path, made: &mut Made) -> io::Result<()> {
    match std::fs::metadata(target) {
        Ok(md) if md.is_dir() == is_dir => return Ok(()),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} exists and is {}a directory, the volume is {}",
                    target.display(),
                    if is_dir { "not " } else { "" },
                    if is_dir { "a directory" } else { "a file" },
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(context(target.display())(e)),
    }
    // the deepest ancestor that exists
    let mut parent = target;
    while let Some(p) = parent.parent() {
        parent = p;
        if std::fs::symlink_metadata(p).is_ok() {
            break;
        }
    }
    let dir = std::fs::canonicalize(parent).map_err(context(parent.display()))?;
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", parent.display()),
        ));
    }
    if !made.owns(&dir) {
        mimic(&dir, scratch)?;
        made.mimicked.push(dir.clone());
    }
    let rest = target.strip_prefix(parent).map_err(io::Error::other)?;
    let full = dir.join(rest);
    if let Some(Component::Normal(first)) = rest.components().next() {
        made.trees.push(dir.join(first));
    }
    let create = if is_dir {
        std::fs::create_dir_all(&full)
    } else {
        full.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| File::create(&full).map(drop))
    };
    create.map_err(context(format!(
        "creating the mount point {}",
        full.display()
    )))
}

/// Lays a tmpfs over `dir` holding what `dir` holds (see the module doc).
fn mimic(dir: &Path, scratch: &Path) -> io::Result<()> {
    let what = |w: &str| context(format!("mimicking {} ({w})", dir.display()));
    let md = std::fs::metadata(dir).map_err(what("stat"))?;
    let mut entries: Vec<(OsString, std::fs::FileType)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(what("listing"))? {
        let e = e.map_err(what("listing"))?;
        let kind = e.file_type().map_err(what("listing"))?;
        entries.push((e.file_name(), kind));
    }
    let options = format!(
        "mode={:o},uid={},gid={}",
        md.permissions().mode() & 0o7777,
        md.uid(),
        md.gid()
    );
    mount(
        Some(Path::new("tmpfs")),
        scratch,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&options),
    )
    .map_err(what("tmpfs"))?;
    for (name, kind) in entries {
        let (src, dst) = (dir.join(&name), scratch.join(&name));
        if kind.is_symlink() {
            let to = std::fs::read_link(&src).map_err(what("readlink"))?;
            std::os::unix::fs::symlink(to, &dst).map_err(what("symlink"))?;
            continue;
        }
        let placeholder = if kind.is_dir() {
            std::fs::create_dir(&dst)
        } else {
            File::create(&dst).map(drop)
        };
        placeholder.map_err(what("placeholder"))?;
        match mount(Some(&src), &dst, None, libc::MS_BIND | libc::MS_REC, None) {
            Ok(()) => {}
            // gone since it was listed
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = std::fs::remove_dir(&dst).or_else(|_| std::fs::remove_file(&dst));
            }
            Err(e) => return Err(what(&format!("binding {}", src.display()))(e)),
        }
    }
    // a recursive bind above copied the scratch mount itself when it lies under `dir`
    if let Ok(rel) = scratch.strip_prefix(dir) {
        let copy = cstring(&scratch.join(rel))?;
        // SAFETY: a NUL-terminated path; a failure leaves only an empty copy behind.
        unsafe { libc::umount2(copy.as_ptr(), libc::MNT_DETACH) };
    }
    if dir == Path::new("/") {
        chdir(scratch).map_err(what("chdir"))?;
        mount(
            Some(Path::new(".")),
            Path::new("/"),
            None,
            libc::MS_MOVE,
            None,
        )
        .map_err(what("moving it to /"))?;
        let dot = c".";
        // SAFETY: a NUL-terminated path.
        sys(unsafe { libc::chroot(dot.as_ptr()) }).map_err(what("chroot"))?;
        chdir(Path::new("/")).map_err(what("chdir"))
    } else {
        mount(Some(scratch), dir, None, libc::MS_MOVE, None).map_err(what("moving it in place"))
    }
}

/// A running container's mount namespace, opened for `setns` by commands
/// run in it (`kubectl exec`, exec probes).
pub struct Joined {
    ns: File,
    working_dir: CString,
}

impl Joined {
    /// The namespace of process `pid`; commands start in `working_dir` (`/` when unset).
    pub fn open(pid: i32, working_dir: Option<&str>) -> io::Result<Joined> {
        let ns = File::open(format!("/proc/{pid}/ns/mnt"))
            .map_err(context(format!("the mount namespace of process {pid}")))?;
        let working_dir = cstring(Path::new(working_dir.unwrap_or("/")))?;
        Ok(Joined { ns, working_dir })
    }

    /// Makes `cmd` enter the namespace and the working directory before exec.
    pub fn apply(self, cmd: &mut tokio::process::Command) {
        // SAFETY: between fork and exec the child only calls setns and chdir
        // (async-signal-safe) on a descriptor and a string prepared before.
        unsafe {
            cmd.pre_exec(move || {
                sys(libc::setns(self.ns.as_raw_fd(), libc::CLONE_NEWNS))?;
                sys(libc::chdir(self.working_dir.as_ptr()))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_clean_absolute_paths() {
        let p = |s: &str| target_path(s).map(|p| p.display().to_string());
        assert_eq!(
            p("/var/run/secrets/kubernetes.io/serviceaccount/").expect("ok"),
            "/var/run/secrets/kubernetes.io/serviceaccount"
        );
        assert_eq!(p("//www/./x").expect("ok"), "/www/x");
        assert!(p("www").is_err());
        assert!(p("/www/../etc").is_err());
    }

    #[test]
    fn only_the_pods_directories_are_written_directly() {
        let made = Made {
            mimicked: vec![PathBuf::from("/run")],
            trees: vec![PathBuf::from("/run/secrets"), PathBuf::from("/data")],
        };
        assert!(made.owns(Path::new("/run")));
        assert!(made.owns(Path::new("/run/secrets/kubernetes.io")));
        assert!(made.owns(Path::new("/data/x")));
        // an entry of a mimicked directory is the host's
        assert!(!made.owns(Path::new("/run/user")));
        assert!(!made.owns(Path::new("/")));
    }
}
