//! `korral validate` end to end: the real binary on the fixtures, custom
//! resources included (definitions in the input, in `--crds` folders, and
//! read from a running server with `--kubeconfig`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn korral(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_korral"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run korral")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn valid_fixtures_the_demo_and_every_builtin_kind_pass() {
    // fixtures/kinds: one or more objects of each of the 44 built-in kinds,
    // a shop written as repositories write it (it has its own `shop` namespace,
    // as fixtures/valid does, hence two runs)
    for args in [
        &["validate", "fixtures/valid", "fixtures/demo"][..],
        &["validate", "fixtures/kinds"][..],
    ] {
        let o = korral(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout(&o).contains("all valid"), "{}", stdout(&o));
    }
    let o = korral(&["validate", "fixtures/kinds"]);
    assert!(
        stdout(&o).starts_with("16 files, 68 objects"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn every_invalid_fixture_prints_its_expected_errors() {
    let o = korral(&["validate", "fixtures/invalid"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let expected = std::fs::read_to_string(root().join("fixtures/invalid/expected.txt"))
        .expect("expected.txt");
    let missing: Vec<&str> = expected
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !out.lines().any(|o| o == *l))
        .collect();
    assert!(
        missing.is_empty(),
        "expected lines not printed:\n{}\n\nactual output:\n{out}",
        missing.join("\n")
    );
    // every file in the folder is there to fail, and does
    for entry in std::fs::read_dir(root().join("fixtures/invalid")).expect("dir") {
        let path = entry.expect("entry").path();
        if intake::files::is_manifest(&path) {
            let rel = Path::new("fixtures/invalid").join(path.file_name().expect("name"));
            let prefix = format!("{}:", rel.display());
            assert!(
                out.lines().any(|l| l.starts_with(&prefix)),
                "{} produced no error:\n{out}",
                rel.display()
            );
            assert!(
                expected.lines().any(|l| l.starts_with(&prefix)),
                "{} has no expected error in expected.txt",
                rel.display()
            );
        }
    }
}

#[test]
fn json_output_parses_and_locates_errors() {
    let o = korral(&[
        "validate",
        "-o",
        "json",
        "fixtures/invalid/unknown-field.yaml",
        "fixtures/valid",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["valid"], false);
    let errors = v["errors"].as_array().expect("errors");
    // the typo, and the image it left missing
    assert_eq!(errors.len(), 2, "{v:#}");
    assert_eq!(errors[0]["path"], "spec.template.spec.containers[0].image");
    let e = &errors[1];
    assert_eq!(e["file"], "fixtures/invalid/unknown-field.yaml");
    assert_eq!(e["line"], 16);
    assert_eq!(e["document"], 0);
    assert_eq!(e["object"], "Deployment typo");
    assert_eq!(e["path"], "spec.template.spec.containers[0].imagee");
    assert_eq!(e["class"], "invalid");
}

#[test]
fn missing_paths_and_bad_usage_exit_2() {
    let o = korral(&["validate", "no/such/dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such/dir"));
    let o = korral(&["validate"]);
    assert_eq!(o.status.code(), Some(2));
}

/// The definition of the shop's Orders, and its valid Orders.
const ORDERS_CRD: &str = "fixtures/crds/shop.example.com_orders.yaml";
const ORDERS: &str = "fixtures/crds/orders.yaml";

#[test]
fn custom_resources_validate_against_a_definition_anywhere_in_the_input() {
    // the Orders come first: the definition is registered before anything is checked
    let o = korral(&["validate", ORDERS, ORDERS_CRD, "fixtures/crds/third-party"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        stdout(&o).trim(),
        "4 files, 7 objects: all valid",
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_hand_written_definition_without_list_kind_defines_its_kind() {
    // listKind is defaulted before the definition is checked, as the API server does
    let o = korral(&["validate", "fixtures/crds/handwritten"]);
    assert_eq!(
        stdout(&o).trim(),
        "1 file, 2 objects: all valid",
        "{}",
        stdout(&o)
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn a_custom_resource_without_its_definition_says_how_to_provide_one() {
    let o = korral(&["validate", ORDERS]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l
            == "fixtures/crds/orders.yaml:10:1: [document 0] Order shop/order-1001: kind: no kind \"Order\" is served at apiVersion \"shop.example.com/v1\": it looks like a custom resource; provide its CustomResourceDefinition (in the same input, or with --crds DIR), or read the definitions from a cluster (--kubeconfig)"),
        "{out}"
    );
    assert!(
        out.ends_with("1 file, 4 objects: 4 invalid, 4 errors\n"),
        "{out}"
    );
}

/// A YAML file's lines, and where a field path (`spec.lineItems[1].sku`) is
/// written: the line of its deepest part present (a missing field is
/// reported at its parent). Written here independently of korral's own
/// positions, for block-style YAML as the fixtures are.
fn line_of(text: &str, path: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let mut at = lines.iter().position(|l| content(l)).expect("a document");
    // the column whose children we look at; None at the root
    let mut parent: Option<usize> = None;
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        segments.push((key.to_string(), None));
        while let Some(end) = rest.find(']') {
            segments.push((
                String::new(),
                Some(rest[1..end].parse::<usize>().expect("index")),
            ));
            rest = &rest[end + 1..];
        }
    }
    for (key, index) in segments {
        // a key: the first line below `at` (or `at` itself after a `- `) naming it, inside the parent
        let first = if parent.is_some_and(|p| lines[at][p..].starts_with("- ")) {
            at
        } else {
            at + 1
        };
        let start = if parent.is_none() { at } else { first };
        let mut found = None;
        let mut seen = 0;
        for (i, l) in lines.iter().enumerate().skip(start) {
            if !content(l) {
                continue;
            }
            let col = indent(l);
            let text = l.trim_start();
            // a block list may sit at its key's own indentation
            let inside = parent.is_none_or(|p| {
                col > p || (col == p && (i == at || (index.is_some() && text.starts_with("- "))))
            });
            if !inside {
                break;
            }
            match index {
                None => {
                    let (col, text) = match text.strip_prefix("- ") {
                        Some(t) if i == at => (col + 2, t),
                        _ => (col, text),
                    };
                    if text.starts_with(&format!("{key}:")) && parent.is_none_or(|p| col > p) {
                        found = Some((i, col));
                        break;
                    }
                }
                Some(n) => {
                    if text.starts_with("- ") {
                        if seen == n {
                            found = Some((i, col));
                            break;
                        }
                        seen += 1;
                    }
                }
            }
        }
        match found {
            Some((i, col)) => {
                at = i;
                parent = Some(col);
            }
            None => break,
        }
    }
    at + 1
}

#[test]
fn the_line_locator_of_these_tests_finds_fields_and_parents() {
    let text = "# c\napiVersion: v1\nkind: X\nspec:\n  a: 1\n  items:\n  - sku: A\n    n: 1\n  - sku: B\n    n: 2\n";
    assert_eq!(line_of(text, "spec"), 4);
    assert_eq!(line_of(text, "spec.a"), 5);
    assert_eq!(line_of(text, "spec.missing"), 4);
    assert_eq!(line_of(text, "spec.items[1]"), 9);
    assert_eq!(line_of(text, "spec.items[1].n"), 10);
    assert_eq!(line_of(text, "spec.items[0].sku"), 7);
    assert_eq!(line_of(text, "status"), 2);
}

/// What kube-apiserver reports for an invalid fixture (its first two lines):
/// the field path, and the text korral must print after it (only the kind
/// of error where the fixture says the wording is approximate).
fn kube_verdict(text: &str) -> (String, String) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let path = first
        .rsplit_once("kube-apiserver reports: ")
        .map(|(_, p)| p.trim().to_string())
        .expect("`kube-apiserver reports: PATH` on line 1");
    let second = lines.next().unwrap_or_default();
    let (prefix, message) = second
        .split_once(": ")
        .expect("`kube-apiserver ...: message` on line 2");
    let detail = match message.split_once(" is invalid: ") {
        Some((_, detail)) if prefix.contains("approximate") => {
            detail.split(": ").take(2).collect::<Vec<_>>().join(": ")
        }
        Some((_, detail)) => detail.to_string(),
        // `... cannot be handled as a Order: strict decoding error: unknown field "spec.colour"`
        None => format!(
            "{path}: {}",
            message.rsplit_once(": ").map_or(message, |(_, m)| m)
        ),
    };
    (path, detail)
}

#[test]
fn invalid_custom_resources_are_reported_where_and_as_kube_apiserver_does() {
    let o = korral(&["validate", ORDERS_CRD, "fixtures/crds/invalid"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let dir = root().join("fixtures/crds/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| intake::files::is_manifest(p))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    let mut checked = 0;
    for file in files {
        let rel = Path::new("fixtures/crds/invalid").join(file.file_name().expect("name"));
        let prefix = format!("{}:", rel.display());
        let printed: Vec<&str> = out.lines().filter(|l| l.starts_with(&prefix)).collect();
        if rel.ends_with("customer-changed.yaml") {
            // an update's transition rule: valid as a create
            assert!(printed.is_empty(), "{printed:#?}");
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("fixture");
        let (path, detail) = kube_verdict(&text);
        let line = line_of(&text, &path);
        let at = format!("{}:{line}:", rel.display());
        assert!(
            printed
                .iter()
                .any(|l| l.starts_with(&at) && l.contains(&format!(": {detail}"))),
            "{}: expected an error at line {line} with\n  {detail}\nprinted:\n{}",
            rel.display(),
            printed.join("\n")
        );
        checked += 1;
    }
    assert!(checked >= 15);
    // the definition is not an error, and counted as a validated object
    assert!(!out.contains("shop.example.com_orders.yaml:"), "{out}");
}

#[test]
fn definitions_from_another_folder_are_used_and_checked_but_not_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let crds = dir.path().join("crds");
    std::fs::create_dir_all(&crds).expect("mkdir");
    std::fs::copy(root().join(ORDERS_CRD), crds.join("orders.yaml")).expect("copy");
    std::fs::copy(
        root().join("fixtures/crds/third-party/monitoring.coreos.com_servicemonitors.yaml"),
        crds.join("servicemonitors.yaml"),
    )
    .expect("copy");
    let crds_arg = crds.to_str().expect("utf-8");
    let o = korral(&[
        "validate",
        ORDERS,
        "fixtures/crds/third-party/servicemonitor.yaml",
        "--crds",
        crds_arg,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        stdout(&o).trim(),
        "2 files, 5 objects: all valid (with 2 definitions from --crds)"
    );
    // repeatable, and in JSON
    let only_orders = dir.path().join("only-orders.yaml");
    std::fs::copy(root().join(ORDERS_CRD), &only_orders).expect("copy");
    let o = korral(&[
        "validate",
        "-o",
        "json",
        ORDERS,
        "fixtures/crds/invalid/priority-enum.yaml",
        "--crds",
        only_orders.to_str().expect("utf-8"),
        "--crds",
        "fixtures/crds/third-party",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["objects"], 5, "{v:#}");
    assert_eq!(v["definitions"]["fromFiles"], 2, "{v:#}");
    let errors = v["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e["file"] == "fixtures/crds/invalid/priority-enum.yaml"
                && e["path"] == "spec.priority"
                && e["object"] == "Order shop/invalid-priority-enum"),
        "{v:#}"
    );

    // a broken definition there is reported where it is
    let broken = std::fs::read_to_string(root().join(ORDERS_CRD))
        .expect("crd")
        .replace("scope: Namespaced", "scope: Everywhere");
    std::fs::write(crds.join("orders.yaml"), &broken).expect("write");
    let o = korral(&["validate", ORDERS, "--crds", crds_arg]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let line = line_of(&broken, "spec.scope");
    let at = format!("{}:{line}:", crds.join("orders.yaml").display());
    assert!(
        out.lines().any(|l| l.starts_with(&at)
            && l.contains("CustomResourceDefinition orders.shop.example.com: spec.scope: Unsupported value: \"Everywhere\"")),
        "{out}"
    );
    assert!(
        out.contains("fixtures/crds/orders.yaml:10:1: [document 0] Order shop/order-1001: kind: no kind \"Order\""),
        "{out}"
    );
}

#[test]
fn definitions_are_read_from_a_cluster_with_kubeconfig() {
    let server = support::Server::start();
    server.ok(&[
        "apply",
        "-f",
        &root().join(ORDERS_CRD).display().to_string(),
    ]);
    server.ok(&[
        "wait",
        "--for",
        "condition=Established",
        "--timeout",
        "30s",
        "crd/orders.shop.example.com",
    ]);
    let kubeconfig = server.kubeconfig.display().to_string();
    let o = korral(&[
        "validate",
        ORDERS,
        "fixtures/crds/invalid/replicas-above-maximum.yaml",
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("fixtures/crds/invalid/replicas-above-maximum.yaml:13:3: [document 0] Order shop/invalid-replicas-above-maximum: spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"),
        "{out}"
    );
    assert!(
        out.ends_with(
            "2 files, 5 objects: 1 invalid, 1 error (with 1 definition from the cluster)\n"
        ),
        "{out}"
    );
    // a server that is not there: an error, exit 2
    let gone = tempfile::tempdir().expect("tmp");
    let copy = gone.path().join("kubeconfig.yaml");
    std::fs::copy(&server.kubeconfig, &copy).expect("copy");
    drop(server);
    let o = korral(&[
        "validate",
        ORDERS,
        "--kubeconfig",
        copy.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("reading the CustomResourceDefinitions of the cluster"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn help_describes_where_definitions_come_from() {
    let o = korral(&["validate", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    for needle in [
        "--crds <PATH>",
        "--kubeconfig <FILE>",
        "a custom resource in a.yaml is checked against its definition in z.yaml",
        "Exit status",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}
