//! The JSON Schemas committed under `schemas/json/` are exactly what the types
//! generate. Regenerate with: `UPDATE_SCHEMAS=1 cargo test -p schemas --test schema_files`.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn json_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json")
}

fn render(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("schemas serialise");
    s.push('\n');
    s
}

#[test]
fn committed_schemas_are_current() {
    let dir = json_dir();
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    if update {
        std::fs::create_dir_all(&dir).expect("create schemas/json");
    }
    let mut expected_files = BTreeSet::new();
    let mut stale = Vec::new();
    for info in schemas::builtin_kinds() {
        let name = info.schema_file_name();
        let path = dir.join(&name);
        let want = render(&info.json_schema());
        expected_files.insert(name.clone());
        if update {
            std::fs::write(&path, &want).expect("write schema");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            Ok(_) => stale.push(format!("{name} differs from what the types generate")),
            Err(e) => stale.push(format!("{name} cannot be read: {e}")),
        }
    }
    for entry in std::fs::read_dir(&dir).expect("read schemas/json") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !expected_files.contains(&name) {
            if update {
                std::fs::remove_file(dir.join(&name)).expect("remove stale schema");
            } else {
                stale.push(format!("{name} belongs to no served kind"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "schemas/json is out of date:\n  {}\nregenerate with: UPDATE_SCHEMAS=1 cargo test -p schemas --test schema_files",
        stale.join("\n  ")
    );
}
