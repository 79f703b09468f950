//! A private CNCF distribution registry for tests and benchmarks (Debian's
//! `docker-registry`) on 127.0.0.1: TLS from a test CA made with the
//! openssl command and htpasswd (bcrypt, apache2-utils' `htpasswd`) auth,
//! or plain HTTP without auth; its access log counts the requests made.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::containerd::run;
use crate::support::wait_for;

/// A registry process, stopped on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The CA that signed its certificate (`None`: plain HTTP).
    pub ca: Option<PathBuf>,
    /// Its log (the access log included).
    pub log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let (good, out) = run(cmd, args);
    assert!(good, "{cmd} {args:?}: {out}");
    out
}

/// A test CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key).
pub fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n).to_string_lossy().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    let (ca_key, ca_pem) = (p("ca.key"), p("ca.pem"));
    ca.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca_pem,
        "-days",
        "2",
        "-subj",
        "/CN=korral test registry CA",
    ]);
    ok("openssl", &ca);
    let (key, csr, pem, ext) = (
        p("server.key"),
        p("server.csr"),
        p("server.pem"),
        p("ext.cnf"),
    );
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]);
    ok("openssl", &req);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    ok(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (ca_pem.into(), pem.into(), key.into())
}

impl Registry {
    /// A registry over TLS (a fresh test CA) with htpasswd users.
    pub fn start_tls(dir: &Path, users: &[(&str, &str)]) -> Registry {
        std::fs::create_dir_all(dir).expect("registry dir");
        let (ca, cert, key) = test_ca(dir);
        let htpasswd = dir.join("htpasswd");
        let mut lines = String::new();
        for (u, pw) in users {
            lines.push_str(ok("htpasswd", &["-Bbn", u, pw]).trim());
            lines.push('\n');
        }
        std::fs::write(&htpasswd, lines).expect("htpasswd");
        let extra = format!(
            "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: korral-test\n    path: {}\n",
            cert.display(),
            key.display(),
            htpasswd.display()
        );
        Registry::start(dir, &extra, Some(ca))
    }

    /// A registry over plain HTTP without auth.
    pub fn start_plain(dir: &Path) -> Registry {
        std::fs::create_dir_all(dir).expect("registry dir");
        Registry::start(dir, "", None)
    }

    fn start(dir: &Path, extra: &str, ca: Option<PathBuf>) -> Registry {
        assert!(
            run("docker-registry", &["--version"]).0,
            "docker-registry is not installed (.ci/run installs docker-registry and apache2-utils)"
        );
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{extra}",
                dir.join("data").display()
            ),
        )
        .expect("registry config");
        let log = dir.join("registry.log");
        let out = std::fs::File::create(&log).expect("registry log");
        let err = out.try_clone().expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            child,
            addr,
            ca,
            log,
        };
        wait_for("the registry to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(&r.addr).is_ok()
        });
        r
    }

    /// The access log's requests (`METHOD PATH STATUS`) for one repository's
    /// manifests and blobs (`/v2/<repository>/manifests|blobs/...`).
    pub fn requests(&self, repository: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let prefix = format!("/v2/{repository}/");
        text.lines()
            .filter_map(|l| {
                // combined log format: ... "GET /v2/x/manifests/1 HTTP/1.1" 200 ...
                let (_, req) = l.split_once('"')?;
                let (line, rest) = req.split_once('"')?;
                let mut f = line.split_whitespace();
                let (method, path) = (f.next()?, f.next()?);
                let status = rest.split_whitespace().next()?;
                let tail = path.strip_prefix(&prefix)?;
                (tail.starts_with("manifests/") || tail.starts_with("blobs/"))
                    .then(|| format!("{method} {path} {status}"))
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
