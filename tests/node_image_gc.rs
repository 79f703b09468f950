//! Image garbage collection with real containerd + runc (root): two busybox
//! images imported into the node's namespace, a pod running one of them;
//! the node restarted with thresholds no disk can meet (high 1%, low 0%,
//! minimum age 0) and a 1 s period. The unused image goes — its name and
//! its blobs — while the pod's image stays and the pod keeps its container;
//! freeing too little is kube's FreeDiskSpaceFailed Event on the Node, and
//! failing twice in a row ImageGCFailed.

use crate::node_support;
use crate::support;

use std::time::Duration;

use node_support::containerd::Containerd;
use node_support::{
    NodeProc, apply, container_id, containerd_node_args, events_of, restarts, tail, wait_node,
    wait_ready,
};
use support::{Server, wait_for};

/// The digest `ctr images ls` shows for an image (its target).
fn target_digest(ctd: &Containerd, name: &str) -> String {
    let (ok, out) = ctd.ctr(&["images", "ls"]);
    assert!(ok, "{out}");
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2).map(|d| d.to_string()))
        .unwrap_or_else(|| panic!("no image {name} in:\n{out}"))
}

fn has(ctd: &Containerd, what: &[&str], needle: &str) -> bool {
    let (ok, out) = ctd.ctr(what);
    assert!(ok, "ctr {what:?}: {out}");
    out.contains(needle)
}

#[test]
fn unused_images_are_collected_above_the_high_threshold() {
    let s = Server::start();
    let name = format!("ctd-gc-{}", std::process::id());
    let dir = s.dir.path().join("ctd");
    std::fs::create_dir_all(&dir).expect("dir");
    let ctd = Containerd::start(&dir, &name);
    ctd.import_busybox("busybox:1.36");
    let extra = dir.join("extra.txt");
    std::fs::write(&extra, "only in the unused image\n").expect("extra");
    ctd.import_busybox_with(
        "gc-unused:1",
        &[format!("{}:/extra.txt", extra.to_string_lossy())],
    );
    let used = "docker.io/library/busybox:1.36";
    let unused = "docker.io/library/gc-unused:1";
    let unused_digest = target_digest(&ctd, unused);
    let used_digest = target_digest(&ctd, used);
    assert_ne!(used_digest, unused_digest, "two images");

    // first without collection (a high threshold of 100 disables it): the pod starts
    let data = dir.join("node-data");
    let log = s.dir.path().join("node.log");
    let off = containerd_node_args(
        &s,
        &name,
        &data,
        &ctd,
        &[
            "--image-gc-high-threshold",
            "100",
            "--image-gc-period",
            "1s",
        ],
    );
    let node = NodeProc::start(&data, &log, &off);
    wait_node(&s, &node, &name);
    apply(
        &s,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: keeper}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:1.36\n    imagePullPolicy: Never\n    command: [sleep, \"3600\"]\n",
    );
    wait_ready(&s, &node, "keeper", Duration::from_secs(60));
    let container = container_id(&s, "keeper");
    assert!(has(&ctd, &["images", "ls", "-q"], unused));
    drop(node);

    // then with thresholds no disk meets: everything unused goes, and it is never enough
    let on = containerd_node_args(
        &s,
        &name,
        &data,
        &ctd,
        &[
            "--image-gc-high-threshold",
            "1",
            "--image-gc-low-threshold",
            "0",
            "--image-minimum-gc-age",
            "0s",
            "--image-gc-period",
            "1s",
        ],
    );
    let node = NodeProc::start(&data, &log, &on);
    wait_for(
        "the unused image and its blobs to be removed",
        Duration::from_secs(30),
        || {
            !has(&ctd, &["images", "ls", "-q"], unused)
                && !has(&ctd, &["content", "ls"], &unused_digest)
        },
    );
    wait_for(
        "FreeDiskSpaceFailed and ImageGCFailed Events on the Node",
        Duration::from_secs(30),
        || {
            let ev = events_of(&s, &name);
            ev.contains("FreeDiskSpaceFailed: Failed to garbage collect required amount of images. Attempted to free ")
                && ev.contains("ImageGCFailed: ")
        },
    );
    let log_text = node.log_text();
    assert!(
        log_text.contains("Disk usage on image filesystem is over the high threshold")
            && log_text.contains("Removing image to free bytes"),
        "the kubelet's log lines:\n{}",
        tail(&log_text, 40)
    );
    // the pod's image is in use: it, its content and the pod stay
    assert!(
        has(&ctd, &["images", "ls", "-q"], used),
        "the used image stays"
    );
    assert!(has(&ctd, &["content", "ls"], &used_digest));
    wait_ready(&s, &node, "keeper", Duration::from_secs(30));
    assert_eq!(container_id(&s, "keeper"), container, "same container");
    assert_eq!(restarts(&s, "keeper"), 0);
}
