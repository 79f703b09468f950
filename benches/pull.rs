//! Image pull benchmark: an image of N layers of random data (default 8 ×
//! 8 MiB, `PULL_LAYERS`/`PULL_LAYER_MIB`) pushed to Debian's distribution
//! registry on 127.0.0.1 (plain HTTP), then pulled into a fresh containerd
//! (own root, so no blob is shared between runs) by the node's puller
//! (`node::runtime::containerd::pull`) and by containerd's own client, `ctr`,
//! in the same run: fetch only (`ctr content fetch`) and fetch + unpack
//! (`ctr image pull`; korral: pull, then the unpack a container start does).
//! Medians of `PULL_RUNS` (default 3) runs; a table with ratios, no timed
//! asserts. Run: `cargo bench --bench pull` (root, containerd, runc,
//! docker-registry).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/node_support/mod.rs"]
mod node_support;

use std::collections::BTreeMap;
use std::time::Instant;

use node::runtime::auth::Keyring;
use node::runtime::containerd::api::Api;
use node::runtime::containerd::archive::{Entry, Writer};
use node::runtime::containerd::busybox::digest;
use node::runtime::containerd::image::{self, OCI_MANIFEST};
use node::runtime::containerd::pull::Puller;
use node::runtime::containerd::push::{Destination, Source, push};
use node::runtime::containerd::registry_config::RegistryConfig;
use node_support::containerd::{Containerd, run};
use node_support::registry::Registry;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An OCI image of `layers` uncompressed layers, each one file of `mib` MiB of random bytes.
fn make_image(
    layers: usize,
    mib: usize,
) -> (
    BTreeMap<String, Vec<u8>>,
    containerd_client::types::Descriptor,
) {
    let mut blobs = BTreeMap::new();
    let (mut descs, mut diff_ids) = (Vec::new(), Vec::new());
    for i in 0..layers {
        let data = noise(mib << 20, i as u64 + 1);
        let mut w = Writer::default();
        w.add(Entry::File {
            path: &format!("layer-{i}.bin"),
            mode: 0o644,
            data: &data,
        })
        .expect("tar");
        let tar = w.finish();
        let d = digest(&tar);
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": tar.len()}));
        diff_ids.push(d.clone());
        blobs.insert(d, tar);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": image::architecture(), "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .expect("config");
    let cd = digest(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs
    }))
    .expect("manifest");
    blobs.insert(cd, config);
    let md = digest(&manifest);
    let top = containerd_client::types::Descriptor {
        media_type: OCI_MANIFEST.into(),
        digest: md.clone(),
        size: i64::try_from(manifest.len()).unwrap_or(0),
        annotations: Default::default(),
    };
    blobs.insert(md, manifest);
    (blobs, top)
}

/// `len` pseudo-random bytes (xorshift64; distinct per seed, incompressible enough).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Times one pull into a fresh containerd: (fetch, fetch + unpack) seconds by korral, by ctr.
fn one_run(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    reference: &str,
    registries: &RegistryConfig,
) -> [f64; 4] {
    // each pull gets a containerd of its own, in a directory of its own
    let fresh = |what: &str| {
        let d = dir.join(what);
        std::fs::create_dir_all(&d).expect("containerd dir");
        Containerd::start(&d, "bench-pull")
    };
    let time_ctr = |args: &[&str]| {
        let ctd = fresh(&args.join("-"));
        let sock = ctd.sock.to_string_lossy().to_string();
        let mut all = vec!["--address", &sock, "--namespace", &ctd.namespace];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--plain-http", reference]);
        let t = Instant::now();
        let (ok, out) = run("ctr", &all);
        let s = t.elapsed().as_secs_f64();
        assert!(ok, "ctr {args:?}: {out}");
        s
    };
    let ctr_fetch = time_ctr(&["content", "fetch"]);
    let ctr_pull = time_ctr(&["image", "pull"]);
    let time_korral = |unpack: bool| {
        let ctd = fresh(if unpack {
            "korral-pull"
        } else {
            "korral-fetch"
        });
        rt.block_on(async {
            let api = Api::connect(&ctd.sock, &ctd.namespace).await.expect("api");
            let puller = std::sync::Arc::new(Puller::new(api.clone(), registries.clone()));
            let t = Instant::now();
            puller.pull(reference, &Keyring::new()).await.expect("pull");
            if unpack {
                let r = image::resolve(&api, reference)
                    .await
                    .expect("resolve")
                    .expect("the image");
                image::unpack(&api, "overlayfs", &r).await.expect("unpack");
            }
            t.elapsed().as_secs_f64()
        })
    };
    let k_fetch = time_korral(false);
    let k_pull = time_korral(true);
    [k_fetch, ctr_fetch, k_pull, ctr_pull]
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !run("containerd", &["--version"]).0 || !run("docker-registry", &["--version"]).0 {
        println!(
            "image pull benchmark: skipped (needs root, containerd, runc and docker-registry)"
        );
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (layers, mib, runs) = (
        env("PULL_LAYERS", 8),
        env("PULL_LAYER_MIB", 8),
        env("PULL_RUNS", 3),
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let registry = Registry::start_plain(&tmp.path().join("registry"));
    let reference = format!("{}/bench/layers:{layers}", registry.addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (blobs, top) = make_image(layers, mib);
    let total: usize = blobs.values().map(Vec::len).sum();
    let pushed = rt
        .block_on(push(
            &Source::Archive(&blobs),
            &top,
            &Destination {
                reference: reference.clone(),
                plain_http: true,
                ..Default::default()
            },
        ))
        .expect("push");
    let registries = RegistryConfig::parse(&format!(
        "mirrors:\n  \"{a}\":\n    endpoint: [\"http://{a}\"]\n",
        a = registry.addr
    ))
    .expect("registries.yaml");
    let mut all: Vec<[f64; 4]> = Vec::new();
    for i in 0..runs {
        all.push(one_run(
            &rt,
            &tmp.path().join(format!("ctd-{i}")),
            &reference,
            &registries,
        ));
    }
    let col = |c: usize| median(all.iter().map(|r| r[c]).collect());
    let mb = total as f64 / f64::from(1 << 20);
    println!(
        "image pull benchmark: {layers} layers × {mib} MiB random data ({mb:.1} MiB, {} blobs pushed), plain HTTP registry on loopback, fresh containerd per pull, median of {runs} runs",
        pushed.uploaded
    );
    println!("| what | korral | ctr | korral / ctr |");
    println!("|---|---|---|---|");
    for (name, k, c) in [
        ("fetch into the content store", col(0), col(1)),
        ("fetch + unpack (overlayfs)", col(2), col(3)),
    ] {
        println!(
            "| {name} | {k:.2} s ({:.0} MiB/s) | {c:.2} s ({:.0} MiB/s) | {:.2} |",
            mb / k,
            mb / c,
            k / c
        );
    }
}
