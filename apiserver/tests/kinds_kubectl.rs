//! Every built-in kind through the real kubectl: the realistic manifests in
//! fixtures/kinds/ (one or more objects of each of the 44 kinds) are
//! created, re-applied unchanged, diffed clean, read back holding everything
//! the manifests said, listed with kube-apiserver's columns, applied
//! server-side, and deleted.

use crate::cluster;

use std::collections::BTreeSet;

use serde_json::Value;

use cluster::{Cluster, repo_root, text};

/// The objects of fixtures/kinds, in file order.
fn fixture_objects() -> Vec<Value> {
    let dir = repo_root().join("fixtures/kinds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/kinds")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let body = std::fs::read_to_string(&f).expect("read fixture");
        let decoded = schemas::decode_file(&f.to_string_lossy(), &body);
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        out.extend(decoded.manifests.into_iter().map(|m| m.object));
    }
    out
}

fn kinds_dir() -> String {
    repo_root()
        .join("fixtures/kinds")
        .to_string_lossy()
        .to_string()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Where `sent` and `live` disagree: every field the manifest sets must be
/// in the live object with the same value (defaults may add more).
fn missing(sent: &Value, live: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, live) {
        (Value::Object(s), Value::Object(l)) => {
            for (k, v) in s {
                match l.get(k) {
                    Some(lv) => missing(v, lv, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k} is gone")),
                }
            }
        }
        (Value::Array(s), Value::Array(l)) if s.len() == l.len() => {
            for (i, (a, b)) in s.iter().zip(l).enumerate() {
                missing(a, b, &format!("{path}[{i}]"), out);
            }
        }
        // quantities come back canonical ("1.0" → "1") and ints may be strings in YAML
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: sent {a}, read back {b}")),
    }
}

#[test]
fn every_kind_applies_reads_back_and_prints_like_kube_apiserver() {
    let c = Cluster::start();
    let objects = fixture_objects();
    let kinds: BTreeSet<(String, String)> = objects
        .iter()
        .map(|o| {
            (
                str_at(o, "/apiVersion").to_string(),
                str_at(o, "/kind").to_string(),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 44, "{kinds:?}");

    // create: one line per object
    let o = c.kubectl(&["apply", "-f", &kinds_dir()]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), objects.len(), "{out}");
    assert!(lines.iter().all(|l| l.ends_with(" created")), "{out}");

    // the same files again: kubectl sends no patch, except where it does
    // against kube-apiserver too (a Secret's write-only stringData; atomic
    // lists whose items the server defaults: a StatefulSet's
    // volumeClaimTemplates, an admission policy's rules' `scope`)
    let out = c.ok(&["apply", "-f", &kinds_dir()]);
    let patched: BTreeSet<&str> = out.lines().filter(|l| !l.ends_with(" unchanged")).collect();
    let as_in_kube: BTreeSet<&str> = [
        "secret/storefront-env configured",
        "statefulset.apps/cart-redis configured",
        "validatingadmissionpolicy.admissionregistration.k8s.io/shop-order-limits configured",
    ]
    .into();
    assert_eq!(patched, as_in_kube, "{out}");
    // and the patches it sends change nothing
    let o = c.kubectl(&["diff", "-f", &kinds_dir()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "kubectl diff:\n{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );

    // read back: everything the manifests say is there
    let mut problems = Vec::new();
    for sent in &objects {
        let (kind, name) = (str_at(sent, "/kind"), str_at(sent, "/metadata/name"));
        // the version the manifest used (autoscaling/v1, not the preferred v2)
        let resource = match str_at(sent, "/apiVersion").rsplit_once('/') {
            Some((group, version)) => format!("{}.{version}.{group}", kind.to_lowercase()),
            None => kind.to_lowercase(),
        };
        let mut args = vec!["get", resource.as_str(), name, "-o", "json"];
        let ns = str_at(sent, "/metadata/namespace");
        if !ns.is_empty() {
            args.extend(["-n", ns]);
        }
        let live: Value = serde_json::from_str(&c.ok(&args)).expect("object JSON");
        let mut sent = sent.clone();
        if kind == "Secret" {
            // stringData is write-only: it comes back base64 in data
            if let Some(m) = sent.as_object_mut() {
                m.remove("stringData");
            }
        }
        missing(&sent, &live, &format!("{kind}/{name}"), &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // one get over every file: each object is listed
    let all = c.ok(&["get", "-f", &kinds_dir(), "-o", "wide"]);
    for o in &objects {
        let name = str_at(o, "/metadata/name");
        assert!(all.contains(name), "{name} missing from\n{all}");
    }

    // the columns kube-apiserver 1.33 prints
    for (resource, header) in [
        (
            "deployments",
            "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
        ),
        ("statefulsets", "NAME READY AGE CONTAINERS IMAGES"),
        (
            "daemonsets",
            "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE CONTAINERS IMAGES SELECTOR",
        ),
        (
            "jobs",
            "NAME STATUS COMPLETIONS DURATION AGE CONTAINERS IMAGES SELECTOR",
        ),
        (
            "cronjobs",
            "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE CONTAINERS IMAGES SELECTOR",
        ),
        (
            "pvc",
            "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE VOLUMEMODE",
        ),
        ("ingress", "NAME CLASS HOSTS ADDRESS PORTS AGE"),
        ("hpa", "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE"),
        (
            "pdb",
            "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE",
        ),
        ("rolebindings", "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS"),
        ("serviceaccounts", "NAME SECRETS AGE"),
        ("networkpolicies", "NAME POD-SELECTOR AGE"),
        ("resourcequotas", "NAME REQUEST LIMIT AGE"),
    ] {
        let table = c.ok(&["get", resource, "-n", "shop", "-o", "wide"]);
        let first: Vec<&str> = table
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(first.join(" "), header, "kubectl get {resource}:\n{table}");
    }
    for (resource, header) in [
        (
            "priorityclasses",
            "NAME VALUE GLOBAL-DEFAULT AGE PREEMPTIONPOLICY",
        ),
        (
            "storageclasses",
            "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE",
        ),
        (
            "clusterrolebindings",
            "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS",
        ),
        ("runtimeclasses", "NAME HANDLER AGE"),
    ] {
        let table = c.ok(&["get", resource, "-o", "wide"]);
        let first: Vec<&str> = table
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(first.join(" "), header, "kubectl get {resource}:\n{table}");
    }
    // the system classes every cluster has
    let classes = c.ok(&["get", "priorityclasses", "-o", "name"]);
    assert!(
        classes.contains("priorityclass.scheduling.k8s.io/system-node-critical"),
        "{classes}"
    );

    // server-side apply over the client-side one, twice
    for _ in 0..2 {
        let out = c.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &kinds_dir(),
        ]);
        assert!(
            out.lines().all(|l| l.ends_with(" serverside-applied")),
            "{out}"
        );
    }

    // delete everything but the namespace (no namespace controller runs here)
    let mut deletable = Vec::new();
    for f in std::fs::read_dir(repo_root().join("fixtures/kinds"))
        .expect("dir")
        .filter_map(Result::ok)
    {
        let p = f.path();
        if p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("00-namespace.yaml") {
            deletable.push(p.to_string_lossy().to_string());
        }
    }
    deletable.sort();
    let mut args = vec!["delete", "--wait=false"];
    for f in &deletable {
        args.extend(["-f", f.as_str()]);
    }
    let out = c.ok(&args);
    assert!(out.lines().all(|l| l.ends_with(" deleted")), "{out}");
    assert_eq!(out.lines().count(), objects.len() - 1, "{out}");
}
