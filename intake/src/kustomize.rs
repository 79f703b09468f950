//! Building a kustomization with the real kustomize (a `kustomize` on PATH,
//! or the one inside `kubectl`): remote bases refused before the build
//! unless allowed, the build run with a timeout and
//! `--load-restrictor LoadRestrictionsRootOnly`, its errors mapped to the
//! kustomization file, its output split into one file per object named
//! after the kustomization (and the file kustomize says it came from),
//! kustomize's own annotations removed.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use schemas::korral::GitSourceSpec;
use schemas::{Class, Diagnostic};
use serde_json::Value;

use crate::source::SourceFile;

/// The names kustomize looks for in a folder, in its order.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// How long a build may take.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The annotation kustomize writes when a kustomization asks for
/// `buildMetadata: [originAnnotations]`.
pub const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";

/// Which program builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tool {
    /// `kustomize` on PATH, else `kubectl kustomize`.
    #[default]
    Auto,
    /// `kustomize build`.
    Kustomize,
    /// `kubectl kustomize`.
    Kubectl,
}

/// How a source's kustomizations are built.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Which program builds.
    pub tool: Tool,
    /// Whether remote resources, bases and components may be fetched.
    pub allow_remote: bool,
    /// How long a build may take.
    pub timeout: Duration,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            tool: Tool::Auto,
            allow_remote: false,
            timeout: BUILD_TIMEOUT,
        }
    }
}

impl BuildOptions {
    /// The options a GitSource's `spec.kustomize` asks for.
    pub fn from_spec(spec: &GitSourceSpec) -> BuildOptions {
        let k = spec.kustomize.clone().unwrap_or_default();
        BuildOptions {
            tool: match k.tool.as_deref() {
                Some("kustomize") => Tool::Kustomize,
                Some("kubectl") => Tool::Kubectl,
                _ => Tool::Auto,
            },
            allow_remote: k.allow_remote_bases.unwrap_or(false),
            timeout: BUILD_TIMEOUT,
        }
    }
}

/// How many successful builds of commits are kept.
pub const CACHED_BUILDS: usize = 32;

/// What identifies the build of a kustomization at a commit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BuildKey {
    /// The repository (its mirror).
    pub repository: String,
    /// The commit.
    pub commit: String,
    /// The kustomization's folder.
    pub path: String,
    /// The program that builds.
    pub tool: Tool,
}

/// Recent successful builds, oldest first.
type Kept = VecDeque<(BuildKey, Vec<SourceFile>)>;

/// Runs `build` unless a build with the same key succeeded recently, and
/// keeps its output: a commit's build cannot change while remote bases
/// are refused, so polls and drift checks of an unchanged commit do not
/// check it out and build it again. Failures are not kept (the tool may
/// be installed later).
pub fn cached<E>(
    key: BuildKey,
    build: impl FnOnce() -> Result<Vec<SourceFile>, E>,
) -> Result<Vec<SourceFile>, E> {
    static BUILDS: OnceLock<Mutex<Kept>> = OnceLock::new();
    let builds = BUILDS.get_or_init(Default::default);
    let lock = || builds.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, files)) = lock().iter().find(|(k, _)| *k == key) {
        tracing::debug!(commit = %key.commit, path = %key.path, "kustomize build reused");
        return Ok(files.clone());
    }
    let files = build()?;
    let mut kept = lock();
    kept.retain(|(k, _)| *k != key);
    kept.push_back((key, files.clone()));
    while kept.len() > CACHED_BUILDS {
        kept.pop_front();
    }
    Ok(files)
}

/// The kustomization file in `dir` on disk, if any.
pub fn kustomization_in(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Whether a file name is a kustomization's.
pub fn is_kustomization_name(name: &str) -> bool {
    KUSTOMIZATION_FILES.contains(&name)
}

/// The path a built object is reported under: its kustomization, and the
/// file it came from when kustomize recorded it.
fn built_path(kustomization: &str, origin: Option<&str>) -> String {
    match origin {
        Some(o) if o != kustomization => format!("{kustomization} (from {o})"),
        _ => kustomization.to_string(),
    }
}

/// The kustomization (and origin) a file of a snapshot names when its
/// objects came from a build (`overlays/prod/kustomization.yaml`, or
/// `overlays/prod/kustomization.yaml (from base/deployment.yaml)`).
pub fn built_from(file: &str) -> Option<&str> {
    let k = file.split(" (from ").next().unwrap_or(file);
    let name = k.rsplit('/').next().unwrap_or(k);
    is_kustomization_name(name).then_some(file)
}

/// Whether a file of a snapshot is a kustomization itself (named like one,
/// and a `kustomize.config.k8s.io` kind or no Kubernetes object), not an
/// object a build produced.
pub fn is_unbuilt_kustomization(path: &str, data: &[u8]) -> bool {
    if !is_kustomization_name(path.rsplit('/').next().unwrap_or(path)) {
        return false;
    }
    let Ok(v) = serde_saphyr::from_slice::<Value>(data) else {
        return true;
    };
    v["apiVersion"]
        .as_str()
        .is_none_or(|a| a.starts_with("kustomize.config.k8s.io/"))
}

/// Whether a resource, base or component entry names something remote
/// (kustomize would fetch it): a URL, `git@…`, `github.com/…`, a `?ref=`
/// query, or a `host.tld/…` path that is not a local folder.
pub fn is_remote(entry: &str, local_exists: bool) -> bool {
    let e = entry.trim();
    if e.contains("://") || e.starts_with("git@") || e.starts_with("git::") {
        return true;
    }
    if ["github.com/", "gitlab.com/", "bitbucket.org/", "ssh:"]
        .iter()
        .any(|p| e.starts_with(p))
    {
        return true;
    }
    if ["?ref=", "?version=", "?submodules=", "?timeout="]
        .iter()
        .any(|q| e.contains(q))
    {
        return true;
    }
    // kustomize tries a missing local path as a repository URL
    let first = e.split('/').next().unwrap_or("");
    !local_exists && e.contains('/') && first.contains('.') && !first.starts_with('.')
}

fn diagnostic(file: &str, line: u32, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        line,
        column: if line > 0 { 1 } else { 0 },
        document: None,
        object: None,
        path: None,
        class: Class::Invalid,
        message,
    }
}

/// `a/b/../c` → `a/c`; a path leaving the root keeps its leading `..`.
fn normalize(p: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if parts.last().is_some_and(|l| l != "..") {
                    parts.pop();
                } else {
                    parts.push("..".into());
                }
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// The first line of `text` (1-based) holding `needle`, 0 if none.
fn line_of(text: &str, needle: &str) -> u32 {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(0, |i| i as u32 + 1)
}

/// Checks the kustomization in `root/dir` and every local kustomization it
/// reaches: each must parse, and none may name a remote resource, base or
/// component unless `allow_remote`. Returns every problem, located.
pub fn check_references(root: &Path, dir: &str, allow_remote: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    check_dir(root, Path::new(dir), allow_remote, &mut seen, &mut out);
    out
}

fn check_dir(
    root: &Path,
    dir: &Path,
    allow_remote: bool,
    seen: &mut HashSet<String>,
    out: &mut Vec<Diagnostic>,
) {
    let rel_dir = normalize(dir);
    if !seen.insert(rel_dir.clone()) || seen.len() > 1000 {
        return;
    }
    let Some(file) = kustomization_in(&root.join(&rel_dir)) else {
        return;
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rel_file = normalize(&Path::new(&rel_dir).join(&name));
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            out.push(diagnostic(&rel_file, 0, format!("cannot read: {e}")));
            return;
        }
    };
    let doc: Value = match serde_saphyr::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            let line = msg
                .split("line ")
                .nth(1)
                .and_then(|s| {
                    s.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .and_then(|n| n.parse().ok())
                })
                .unwrap_or(0);
            out.push(diagnostic(
                &rel_file,
                line,
                format!("not a valid kustomization: {msg}"),
            ));
            return;
        }
    };
    for field in ["resources", "bases", "components"] {
        let Some(entries) = doc.get(field).and_then(Value::as_array) else {
            continue;
        };
        for entry in entries.iter().filter_map(Value::as_str) {
            let local = Path::new(&rel_dir).join(entry);
            let exists = root.join(&local).exists();
            if is_remote(entry, exists) {
                if !allow_remote {
                    out.push(diagnostic(
                        &rel_file,
                        line_of(&text, entry),
                        format!(
                            "{field} entry {entry:?} is remote: refused (set spec.kustomize.allowRemoteBases to fetch remote bases)"
                        ),
                    ));
                }
                continue;
            }
            if root.join(&local).is_dir() {
                check_dir(root, &local, allow_remote, seen, out);
            }
        }
    }
}

/// The executable `name` in the folders of `path` (a PATH value).
fn find_on_path(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The program and leading arguments that build with `tool`, or why none can.
pub fn command_for(tool: Tool) -> Result<(PathBuf, Vec<&'static str>), String> {
    command_in(tool, std::env::var_os("PATH").as_deref())
}

/// [`command_for`] with the programs searched in `path` (a PATH value).
fn command_in(tool: Tool, path: Option<&OsStr>) -> Result<(PathBuf, Vec<&'static str>), String> {
    let kustomize = || find_on_path("kustomize", path).map(|p| (p, vec!["build"]));
    let kubectl = || find_on_path("kubectl", path).map(|p| (p, vec!["kustomize"]));
    match tool {
        Tool::Auto => kustomize().or_else(kubectl).ok_or_else(|| {
            "cannot build the kustomization: neither `kustomize` nor `kubectl` is on PATH".into()
        }),
        Tool::Kustomize => kustomize().ok_or_else(|| {
            "cannot build the kustomization: `kustomize` is not on PATH (spec.kustomize.tool: kustomize)".into()
        }),
        Tool::Kubectl => kubectl().ok_or_else(|| {
            "cannot build the kustomization: `kubectl` is not on PATH (spec.kustomize.tool: kubectl)".into()
        }),
    }
}

/// The message of kustomize's stderr: kubectl's `… "command failed"
/// err="…"` unwrapped, `Error: ` dropped, `root/` removed from paths.
fn error_message(stderr: &str, root: &Path) -> String {
    let mut msg = stderr.trim().to_string();
    if let Some(i) = msg.find("err=\"") {
        let inner = &msg[i + 5..];
        let inner = inner.strip_suffix('"').unwrap_or(inner);
        msg = inner.replace("\\\"", "\"").replace("\\'", "'");
    }
    let msg = msg.strip_prefix("Error: ").unwrap_or(&msg).to_string();
    let root = root.to_string_lossy();
    let root = root.trim_end_matches('/');
    msg.replace(&format!("{root}/"), "").replace(root, ".")
}

/// Runs `program args` in `cwd`, killed after `timeout`: (success, stdout, stderr).
fn run(
    program: &Path,
    args: &[String],
    cwd: &Path,
    timeout: Duration,
) -> Result<(bool, Vec<u8>, String), String> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    // the wait blocks in a thread of its own; a build past its time is killed by pid
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = match finished.recv_timeout(timeout) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("waiting for {}: {e}", program.display())),
        Err(_) => {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill has no memory preconditions; the child is not reaped
                // until the waiter thread's wait returns, so the pid is still ours
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = finished.recv();
            return Err(format!(
                "the build took longer than {}s and was stopped",
                timeout.as_secs()
            ));
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    Ok((
        status.success(),
        out,
        String::from_utf8_lossy(&err).into_owned(),
    ))
}

/// Builds the kustomization in `root/dir` (`dir` relative to `root`, ""
/// for `root` itself) into one file per object, reported under the
/// kustomization's path relative to `root`. Nothing is built when a
/// kustomization names a remote base and `opts` does not allow it.
pub fn build(
    root: &Path,
    dir: &str,
    opts: &BuildOptions,
) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    let dir = normalize(Path::new(dir));
    let kfile = kustomization_in(&root.join(&dir))
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| KUSTOMIZATION_FILES[0].to_string());
    let kpath = normalize(&Path::new(&dir).join(&kfile));
    let refused = check_references(root, &dir, opts.allow_remote);
    if !refused.is_empty() {
        return Err(refused);
    }
    let (program, lead) = command_for(opts.tool).map_err(|m| vec![diagnostic(&kpath, 0, m)])?;
    let mut args: Vec<String> = lead.iter().map(|s| s.to_string()).collect();
    args.push(if dir.is_empty() {
        ".".into()
    } else {
        dir.clone()
    });
    args.push("--load-restrictor".into());
    args.push("LoadRestrictionsRootOnly".into());
    let started = Instant::now();
    let (ok, stdout, stderr) =
        run(&program, &args, root, opts.timeout).map_err(|m| vec![diagnostic(&kpath, 0, m)])?;
    if !ok {
        let message = error_message(&stderr, root);
        tracing::warn!(kustomization = %kpath, "kustomize build failed: {message}");
        return Err(vec![diagnostic(
            &kpath,
            0,
            format!("kustomize build failed: {message}"),
        )]);
    }
    let text = String::from_utf8_lossy(&stdout);
    let files = split_output(&text, &dir, &kpath)?;
    tracing::debug!(kustomization = %kpath, program = %program.display(), objects = files.len(),
        ms = started.elapsed().as_millis() as u64, "built");
    Ok(files)
}

/// Removes kustomize's own annotations from `object`; returns the origin
/// it recorded (a path relative to `dir`), if any.
fn strip_annotations(object: &mut Value) -> Option<String> {
    let meta = object.get_mut("metadata")?.as_object_mut()?;
    let annotations = meta.get_mut("annotations")?.as_object_mut()?;
    let origin = annotations
        .remove(ORIGIN_ANNOTATION)
        .and_then(|v| v.as_str().map(str::to_string));
    annotations.retain(|k, _| {
        !(k.starts_with("internal.config.kubernetes.io/")
            || k == "config.k8s.io/id"
            || k.starts_with("kustomize.config.k8s.io/"))
    });
    if annotations.is_empty() {
        meta.remove("annotations");
    }
    let origin: Value = serde_saphyr::from_str(&origin?).ok()?;
    origin
        .get("path")
        .or_else(|| origin.get("configuredIn"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// kustomize's output (one YAML stream) as one file per object.
fn split_output(text: &str, dir: &str, kpath: &str) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for doc in text.split("\n---\n") {
        let doc = doc.trim_start_matches("---\n");
        if doc.trim().is_empty() {
            continue;
        }
        match serde_saphyr::from_str::<Value>(doc) {
            Ok(mut object) => {
                let origin =
                    strip_annotations(&mut object).map(|o| normalize(&Path::new(dir).join(o)));
                let data = serde_json::to_vec_pretty(&object).unwrap_or_default();
                files.push(SourceFile {
                    path: built_path(kpath, origin.as_deref()),
                    data,
                });
            }
            Err(e) => errors.push(diagnostic(
                kpath,
                0,
                format!("kustomize's output does not parse: {e}"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_entries_are_recognised() {
        for remote in [
            "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1",
            "github.com/org/repo/deploy?ref=main",
            "git@github.com:org/repo.git",
            "ssh://git@example.org/repo.git//base",
            "example.org/team/repo//base",
            "../base?ref=v1",
            "git::https://example.org/repo",
            "file:///srv/base",
        ] {
            assert!(is_remote(remote, false), "{remote}");
        }
        for local in [
            "../../base",
            "deployment.yaml",
            "components/monitoring",
            "./svc.yml",
        ] {
            assert!(!is_remote(local, true), "{local}");
        }
        // a local folder named like a host stays local
        assert!(!is_remote("example.org/base", true));
    }

    #[test]
    fn remote_bases_are_refused_with_the_file_and_line_even_in_a_local_base() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("base")).expect("mkdir");
        std::fs::create_dir_all(root.join("overlays/prod")).expect("mkdir");
        std::fs::write(
            root.join("base/kustomization.yml"),
            "resources:\n- deployment.yaml\n- https://example.org/x.yaml\n",
        )
        .expect("write");
        std::fs::write(
            root.join("overlays/prod/kustomization.yaml"),
            "resources:\n  - ../../base\ncomponents: [github.com/org/repo/comp?ref=v1]\n",
        )
        .expect("write");
        let found = check_references(root, "overlays/prod", false);
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 2, "{shown:?}");
        // the base is checked where the overlay names it, before its components
        assert_eq!(
            (found[0].file.as_str(), found[0].line),
            ("base/kustomization.yml", 3),
            "{shown:?}"
        );
        assert!(found[0].message.contains("allowRemoteBases"), "{shown:?}");
        assert_eq!(
            (found[1].file.as_str(), found[1].line),
            ("overlays/prod/kustomization.yaml", 3),
            "{shown:?}"
        );
        assert!(check_references(root, "overlays/prod", true).is_empty());
        std::fs::write(root.join("base/kustomization.yml"), "resources: [a\n").expect("write");
        let broken = check_references(root, "base", true);
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].file, "base/kustomization.yml");
        assert!(
            broken[0].message.contains("not a valid kustomization") && broken[0].line == 1,
            "{}",
            broken[0]
        );
    }

    #[test]
    fn output_is_split_per_object_with_origins_and_without_kustomize_annotations() {
        let out = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  annotations:\n    config.kubernetes.io/origin: |\n      configuredIn: ../../base/kustomization.yaml\n      configuredBy:\n        kind: ConfigMapGenerator\n  name: c-123\n---\napiVersion: v1\nkind: Service\nmetadata:\n  annotations:\n    keep: \"yes\"\n    internal.config.kubernetes.io/path: x\n  name: s\n";
        let files =
            split_output(out, "overlays/prod", "overlays/prod/kustomization.yaml").expect("parses");
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].path,
            "overlays/prod/kustomization.yaml (from base/kustomization.yaml)"
        );
        assert_eq!(built_from(&files[0].path), Some(files[0].path.as_str()));
        let cm: Value = serde_json::from_slice(&files[0].data).expect("json");
        assert!(cm["metadata"].get("annotations").is_none(), "{cm}");
        assert_eq!(files[1].path, "overlays/prod/kustomization.yaml");
        let svc: Value = serde_json::from_slice(&files[1].data).expect("json");
        assert_eq!(
            svc["metadata"]["annotations"],
            serde_json::json!({"keep": "yes"})
        );
        assert_eq!(built_from("deploy/web.yaml"), None);
        assert!(!is_unbuilt_kustomization(&files[1].path, &files[1].data));
        assert!(is_unbuilt_kustomization(
            "a/kustomization.yml",
            b"resources: [x.yaml]\n"
        ));
        assert!(is_unbuilt_kustomization(
            "Kustomization",
            b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        ));
        assert!(!is_unbuilt_kustomization("a/web.yaml", b"resources: []\n"));
    }

    #[test]
    fn kustomize_is_preferred_then_kubectl_and_neither_is_an_error_naming_both() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().as_os_str();
        let e = command_in(Tool::Auto, Some(path)).expect_err("nothing there");
        assert!(e.contains("`kustomize`") && e.contains("`kubectl`"), "{e}");
        assert!(command_in(Tool::Auto, None).is_err());
        let add = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        add("kubectl");
        let (p, args) = command_in(Tool::Auto, Some(path)).expect("kubectl");
        assert_eq!((p, args), (dir.path().join("kubectl"), vec!["kustomize"]));
        assert!(command_in(Tool::Kustomize, Some(path)).is_err());
        add("kustomize");
        let (p, args) = command_in(Tool::Auto, Some(path)).expect("kustomize");
        assert_eq!((p, args), (dir.path().join("kustomize"), vec!["build"]));
        let (p, _) = command_in(Tool::Kubectl, Some(path)).expect("kubectl asked for");
        assert_eq!(p, dir.path().join("kubectl"));
    }

    #[test]
    fn successful_builds_of_a_commit_are_kept_and_failures_are_not() {
        let key = |commit: &str| BuildKey {
            repository: "/cache/test-cache-repo".into(),
            commit: commit.into(),
            path: "overlays/prod".into(),
            tool: Tool::Auto,
        };
        let file = |p: &str| SourceFile {
            path: p.into(),
            data: Vec::new(),
        };
        let mut runs = 0;
        let failed: Result<Vec<SourceFile>, String> = cached(key("c1"), || {
            runs += 1;
            Err("no kubectl".into())
        });
        assert!(failed.is_err());
        for _ in 0..2 {
            let built: Result<_, String> = cached(key("c1"), || {
                runs += 1;
                Ok(vec![file("a")])
            });
            assert_eq!(built.expect("built")[0].path, "a");
        }
        assert_eq!(runs, 2, "the failure retried, the success reused");
        let other: Result<_, String> = cached(key("c2"), || {
            runs += 1;
            Ok(vec![file("b")])
        });
        assert_eq!(other.expect("built")[0].path, "b");
        assert_eq!(runs, 3, "another commit builds");
    }

    #[test]
    fn a_build_that_takes_too_long_is_stopped() {
        let started = Instant::now();
        let e = run(
            Path::new("/bin/sh"),
            &["-c".into(), "exec sleep 30".into()],
            Path::new("/"),
            Duration::from_millis(200),
        )
        .expect_err("stopped");
        assert!(e.contains("longer than"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20));
        let (ok, out, _) = run(
            Path::new("/bin/sh"),
            &["-c".into(), "echo built".into()],
            Path::new("/"),
            Duration::from_secs(20),
        )
        .expect("runs");
        assert!(ok);
        assert_eq!(out, b"built\n");
    }

    #[test]
    fn kubectls_error_lines_are_unwrapped_and_the_checkout_is_hidden() {
        let root = Path::new("/tmp/checkout-1");
        let e = "E1207 14:48:01.720102    9949 run.go:72] \"command failed\" err=\"accumulating resources from '../../nope': lstat /tmp/checkout-1/nope: no such file\"\n";
        assert_eq!(
            error_message(e, root),
            "accumulating resources from '../../nope': lstat nope: no such file"
        );
        assert_eq!(error_message("Error: bad\n", root), "bad");
    }
}
