//! `korral up` as a newcomer runs it from a checkout: one process serves the
//! API, runs the controllers, a node (process runtime) and intake, syncs
//! `fixtures/demo` whose pods then run and serve the page, writes the
//! kubeconfig kubectl uses, reports what it does, and stops everything
//! (the pods' processes too) on Ctrl-C.

use crate::support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{korral_bin, root, stdout, wait_for};

/// Kills the child if the test fails before stopping it.
pub struct Kill(pub u32);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.0.to_string())
            .status();
    }
}

/// `korral up` on a folder of manifests, its data and log (`up.log`) in a
/// test's temporary directory; killed if the test fails before [`Up::stop`].
pub struct Up {
    child: std::process::Child,
    log_path: std::path::PathBuf,
    /// The admin's kubeconfig.
    pub kubeconfig: std::path::PathBuf,
    _kill: Kill,
}

impl Up {
    /// Starts `korral up` on `src` with `args`, its state in `dir/state`, the
    /// API server on a free loopback port, pods as host processes; waits
    /// until it says it is ready.
    pub fn start(dir: &std::path::Path, src: &std::path::Path, args: &[&str]) -> Up {
        let mut all = vec!["--listen", "127.0.0.1:0", "--runtime", "process"];
        all.extend_from_slice(args);
        Up::start_with(Command::new(korral_bin()), dir, src, &all)
    }

    /// Starts `korral up` on `src` with `args` through `korral` (the binary,
    /// or a command running it, e.g. in a network namespace), its state in
    /// `dir/state`; waits until it says it is ready.
    pub fn start_with(
        mut korral: Command,
        dir: &std::path::Path,
        src: &std::path::Path,
        args: &[&str],
    ) -> Up {
        let log_path = dir.join("up.log");
        let log_file = std::fs::File::create(&log_path).expect("log");
        let child = korral
            .args(["up", "--interval", "1s"])
            .args(args)
            .arg("--data-dir")
            .arg(dir.join("state"))
            .arg(src)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("korral up");
        let up = Up {
            _kill: Kill(child.id()),
            child,
            log_path,
            kubeconfig: dir.join("state").join("kubeconfig.yaml"),
        };
        wait_for(
            "korral up to say it is ready",
            Duration::from_secs(30),
            || up.log().contains("korral up: ready"),
        );
        up
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// kubectl with the admin's kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl")
    }

    /// The pods labelled `app=APP` whose Ready condition is True.
    pub fn ready_pods(&self, app: &str) -> Vec<String> {
        let o = self.kubectl(&[
            "get",
            "pods",
            "-l",
            &format!("app={app}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        ]);
        stdout(&o)
            .lines()
            .filter(|l| l.ends_with(" True"))
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect()
    }

    /// Ctrl-C, then checks that everything stopped.
    pub fn stop(mut self) {
        let log_path = self.log_path.clone();
        stop_up(&mut self.child, &|| {
            std::fs::read_to_string(&log_path).unwrap_or_default()
        });
    }
}

fn curl_page(ip: &str) -> std::process::Output {
    Command::new("curl")
        .args(["-s", "--max-time", "3"])
        .arg(format!("http://{ip}:8080/index.html"))
        .output()
        .expect("curl")
}

/// Stops `korral up` as Ctrl-C does and checks that it stopped cleanly (`log`: its stderr).
pub fn stop_up(child: &mut std::process::Child, log: &dyn Fn() -> String) {
    let o = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(o.success());
    let mut status = None;
    wait_for("korral up to stop", Duration::from_secs(30), || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", log());
    assert!(log().contains("korral up: stopped"), "{}", log());
}

#[test]
fn up_serves_the_demo_and_stops_on_ctrl_c() {
    let data = tempfile::tempdir().expect("temp dir");
    let log_path = data.path().join("up.log");
    let log_file = std::fs::File::create(&log_path).expect("log");
    let mut child = Command::new(korral_bin())
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--runtime",
            "process",
            "--interval",
            "1s",
            "--data-dir",
        ])
        .arg(data.path())
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("korral up");
    let guard = Kill(child.id());
    let kubeconfig = data.path().join("kubeconfig.yaml");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for(
        "korral up to say it is ready",
        Duration::from_secs(30),
        || log().contains("korral up: ready"),
    );
    assert!(
        log().contains("korral up: runtime process: asked for with --runtime process"),
        "{}",
        log()
    );
    assert!(
        log().contains(&format!(
            "kubectl --kubeconfig {} get pods",
            kubeconfig.display()
        )),
        "{}",
        log()
    );
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .expect("kubectl")
    };
    wait_for("the demo's pods", Duration::from_secs(30), || {
        let o = kubectl(&["get", "pods", "--no-headers"]);
        stdout(&o)
            .lines()
            .filter(|l| l.starts_with("hello-"))
            .count()
            == 2
    });
    // Ready once what it applied is healthy (the pods running and ready)
    wait_for("the source to be Ready", Duration::from_secs(30), || {
        let o = kubectl(&[
            "get",
            "gitsource",
            "demo",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        stdout(&o) == "True"
    });
    wait_for("the sync to be reported", Duration::from_secs(10), || {
        log().contains("source default/demo: synced")
    });

    // the scheduler binds them to the local node
    wait_for(
        "the demo's pods running and ready",
        Duration::from_secs(60),
        || {
            let o = kubectl(&["get", "pods", "--no-headers"]);
            stdout(&o)
                .lines()
                .filter(|l| l.starts_with("hello-") && l.contains("1/1") && l.contains("Running"))
                .count()
                == 2
        },
    );
    let o = kubectl(&["get", "pods", "-o", "jsonpath={.items[0].status.podIP}"]);
    let ip = stdout(&o);
    let page = curl_page(&ip);
    assert!(
        stdout(&page).contains("hello from korral"),
        "{}",
        stdout(&page)
    );

    stop_up(&mut child, &log);
    assert!(
        !curl_page(&ip).status.success(),
        "the pods' processes stop with korral up"
    );
    drop(guard);
}
