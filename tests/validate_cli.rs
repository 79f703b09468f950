//! `korral validate` end to end: the real binary on the fixtures.

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
fn valid_fixtures_and_the_demo_pass() {
    let o = korral(&["validate", "fixtures/valid", "fixtures/demo"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("all valid"), "{}", stdout(&o));
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
