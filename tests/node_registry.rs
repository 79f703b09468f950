//! Image pulls end to end with real containerd + runc and Debian's CNCF
//! distribution registry on 127.0.0.1: the busybox image (`korral image
//! build-busybox`) is pushed with `korral image push` — from containerd's
//! store to a registry with TLS from a test CA and htpasswd auth, and from
//! the archive to a plain-HTTP registry; then a `korral node` with a
//! `--registry-config` (k3s's registries.yaml: the CA of the first, the
//! second as a mirror of `example.invalid`) runs a Deployment pulling with an
//! imagePullSecret made by `kubectl create secret docker-registry` (one
//! fetch for both replicas, kube's Pulling/Pulled Events); a wrong password
//! gives ErrImagePull then ImagePullBackOff with the registry's answer, and
//! fixing the Secret starts the same pod; `IfNotPresent` on another pod makes
//! no request to the registry (its access log counted); `example.invalid`
//! comes through the mirror; `Never` without the image gives
//! ErrImageNeverPull.

use crate::node_support;
use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use node_support::containerd::Containerd;
use node_support::registry::Registry;
use node_support::{
    NodeProc, containerd_node_args, events_of, jsonpath, tail, wait_node, wait_ready,
};
use support::{Server, korral_bin, wait_for};

const LONG: Duration = Duration::from_secs(90);
const USER: &str = "puller";
const PASSWORD: &str = "right-horse-battery";

fn korral(args: &[&str]) -> (bool, String) {
    let o = Command::new(korral_bin())
        .args(args)
        .output()
        .expect("run korral");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn pod(name: &str, image: &str, policy: &str, secret: Option<&str>) -> String {
    let secrets = secret
        .map(|s| format!("  imagePullSecrets: [{{name: {s}}}]\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{secrets}  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    imagePullPolicy: {policy}\n    command: [sleep, \"3600\"]\n"
    )
}

fn waiting(s: &Server, pod: &str) -> (String, String) {
    (
        jsonpath(
            s,
            "pod",
            pod,
            "{.status.containerStatuses[0].state.waiting.reason}",
        ),
        jsonpath(
            s,
            "pod",
            pod,
            "{.status.containerStatuses[0].state.waiting.message}",
        ),
    )
}

fn docker_secret(s: &Server, name: &str, server: &str, password: &str, apply: bool) {
    let args = [
        "create",
        "secret",
        "docker-registry",
        name,
        &format!("--docker-server={server}"),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={password}"),
        "--dry-run=client",
        "-o",
        "yaml",
    ];
    let yaml = s.ok(&args);
    if apply {
        s.apply(&yaml);
    }
}

fn push(src_args: &[&str], dest: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["image", "push"];
    args.extend_from_slice(src_args);
    args.push(dest);
    args.extend_from_slice(extra);
    korral(&args)
}

fn registries_yaml(dir: &Path, tls: &Registry, plain: &Registry) -> std::path::PathBuf {
    let ca = tls.ca.as_ref().expect("a TLS registry");
    let path = dir.join("registries.yaml");
    std::fs::write(
        &path,
        format!(
            "mirrors:\n  example.invalid:\n    endpoint: [\"http://{p}\"]\nconfigs:\n  \"{t}\":\n    tls:\n      ca_file: {ca}\n",
            p = plain.addr,
            t = tls.addr,
            ca = ca.display()
        ),
    )
    .expect("registries.yaml");
    path
}

#[test]
fn a_containerd_node_pulls_from_registries_with_pull_secrets_and_mirrors() {
    let s = Server::start();
    let name = format!("ctd-pull-{}", std::process::id());
    let dir = s.dir.path().join("ctd");
    std::fs::create_dir_all(&dir).expect("dir");
    let tls = Registry::start_tls(&dir.join("registry"), &[(USER, PASSWORD)]);
    let plain = Registry::start_plain(&dir.join("mirror"));
    let ctd = Containerd::start(&dir, &name);
    let ca = tls.ca.clone().expect("ca").to_string_lossy().to_string();

    // the image: built, imported into a namespace of its own (the node's stays empty), pushed
    let tar = dir.join("busybox.tar");
    let (ok, out) = korral(&[
        "image",
        "build-busybox",
        &tar.to_string_lossy(),
        "--tag",
        "busybox:1.36",
    ]);
    assert!(ok, "{out}");
    let src_ns = format!("{}-src", ctd.namespace);
    let sock = ctd.sock.to_string_lossy().to_string();
    let (ok, out) = korral(&[
        "image",
        "import",
        &tar.to_string_lossy(),
        "--containerd-address",
        &sock,
        "--namespace",
        &src_ns,
    ]);
    assert!(ok, "{out}");
    let image = format!("{}/busybox:1.36", tls.addr);
    let from_store = [
        "busybox:1.36",
        "--containerd-address",
        &sock,
        "--namespace",
        &src_ns,
    ];
    let (ok, out) = push(
        &from_store,
        &image,
        &["--username", USER, "--password", "wrong", "--ca-file", &ca],
    );
    assert!(
        !ok && out.contains("401"),
        "a wrong password is refused: {out}"
    );
    let (ok, out) = push(&from_store, &image, &["--ca-file", &ca]);
    assert!(!ok, "anonymous pushes are refused: {out}");
    let (ok, out) = push(
        &from_store,
        &image,
        &["--username", USER, "--password", PASSWORD, "--ca-file", &ca],
    );
    assert!(ok && out.contains("pushed"), "{out}");
    let (ok, out) = push(
        &["busybox:1.36", "--archive", &tar.to_string_lossy()],
        &format!("{}/busybox:1.36", plain.addr),
        &["--plain-http"],
    );
    assert!(ok, "push from the archive: {out}");

    let config = registries_yaml(&dir, &tls, &plain);
    let data = dir.join("node-data");
    let args = containerd_node_args(
        &s,
        &name,
        &data,
        &ctd,
        &[
            "--registry-config",
            &config.to_string_lossy(),
            "--backoff-base",
            "2s",
            "--backoff-max",
            "4s",
        ],
    );
    let node = NodeProc::start(&data, &s.dir.path().join("node.log"), &args);
    wait_node(&s, &node, &name);

    // a Deployment with a pull secret: one fetch for both replicas
    docker_secret(&s, "regcred", &tls.addr, PASSWORD, true);
    s.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: pulled}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: pulled}}}}\n  template:\n    metadata: {{labels: {{app: pulled}}}}\n    spec:\n      imagePullSecrets: [{{name: regcred}}]\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {image}\n        command: [sleep, \"3600\"]\n"
    ));
    wait_for("both replicas Running", LONG, || {
        s.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=pulled",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ])
        .stdout
            == b"Running Running"
    });
    let pods = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=pulled",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let pods: Vec<&str> = pods.split_whitespace().collect();
    assert_eq!(
        jsonpath(&s, "pod", pods[0], "{.spec.containers[0].imagePullPolicy}"),
        "IfNotPresent",
        "a tagged image defaults to IfNotPresent"
    );
    let fetched: Vec<String> = tls
        .requests("busybox")
        .into_iter()
        .filter(|r| r.starts_with("GET /v2/busybox/manifests/") && r.ends_with(" 200"))
        .collect();
    assert_eq!(
        fetched.len(),
        1,
        "one manifest fetch for two pods: {fetched:?}"
    );
    let all_events: String = pods.iter().map(|p| events_of(&s, p)).collect();
    assert!(
        all_events.contains(&format!("Pulling: Pulling image \"{image}\"")),
        "{all_events}"
    );
    let pulled = all_events
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "Pulled: Successfully pulled image \"{image}\" in "
            ))
        })
        .unwrap_or_else(|| panic!("no Pulled event: {all_events}"));
    assert!(
        pulled.contains("including waiting). Image size: ") && pulled.ends_with(" bytes."),
        "{pulled}"
    );
    let image_id = jsonpath(&s, "pod", pods[0], "{.status.containerStatuses[0].imageID}");
    assert!(image_id.contains("sha256:"), "{image_id}");

    // a wrong password: ErrImagePull, then ImagePullBackOff, with the registry's answer
    docker_secret(&s, "badcred", &tls.addr, "wrong", true);
    s.apply(&pod("badpull", &image, "Always", Some("badcred")));
    let uid = jsonpath(&s, "pod", "badpull", "{.metadata.uid}");
    // ErrImagePull lasts until the next sync (a second here): a slow poll may
    // only see the back-off after it; the Events below show both steps
    wait_for("ErrImagePull", LONG, || {
        let (reason, message) = waiting(&s, "badpull");
        match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" => {
                assert!(message.contains("401 Unauthorized"), "{reason}: {message}");
                true
            }
            _ => false,
        }
    });
    wait_for("ImagePullBackOff", LONG, || {
        waiting(&s, "badpull").0 == "ImagePullBackOff"
    });
    let (_, message) = waiting(&s, "badpull");
    assert!(
        message.starts_with(&format!("Back-off pulling image \"{image}\""))
            && message.contains("401 Unauthorized"),
        "{message}"
    );
    let ev = events_of(&s, "badpull");
    for want in [
        format!("Failed: Failed to pull image \"{image}\": "),
        "Failed: Error: ErrImagePull".to_string(),
        format!("BackOff: Back-off pulling image \"{image}\""),
        "Failed: Error: ImagePullBackOff".to_string(),
    ] {
        assert!(ev.contains(&want), "{want:?} in\n{ev}");
    }
    // the Secret fixed: the same pod pulls and runs
    docker_secret(&s, "badcred", &tls.addr, PASSWORD, true);
    wait_ready(&s, &node, "badpull", LONG);
    assert_eq!(jsonpath(&s, "pod", "badpull", "{.metadata.uid}"), uid);

    // IfNotPresent with the image on the node: no request to the registry
    let before = tls.requests("busybox");
    s.apply(&pod("again", &image, "IfNotPresent", Some("regcred")));
    wait_ready(&s, &node, "again", LONG);
    assert_eq!(tls.requests("busybox"), before, "no registry request");
    let ev = events_of(&s, "again");
    assert!(
        ev.contains(&format!(
            "Pulled: Container image \"{image}\" already present on machine"
        )),
        "{ev}"
    );

    // a mirror: example.invalid through the plain-HTTP registry
    s.apply(&pod(
        "mirrored",
        "example.invalid/busybox:1.36",
        "IfNotPresent",
        None,
    ));
    wait_ready(&s, &node, "mirrored", LONG);
    assert!(
        plain
            .requests("busybox")
            .iter()
            .any(|r| r.starts_with("GET /v2/busybox/manifests/1.36") && r.ends_with(" 200")),
        "the mirror served it: {:?}",
        plain.requests("busybox")
    );

    // Never, and the image is not here
    s.apply(&pod(
        "never",
        &format!("{}/busybox:absent", tls.addr),
        "Never",
        None,
    ));
    wait_for("ErrImageNeverPull", LONG, || {
        waiting(&s, "never").0 == "ErrImageNeverPull"
    });
    let (_, message) = waiting(&s, "never");
    assert!(
        message.contains("is not present with pull policy of Never"),
        "{message}\n{}",
        tail(&node.log_text(), 20)
    );
}
