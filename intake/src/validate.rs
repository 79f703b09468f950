//! Validating manifest files on all cores, in two passes: read and decode
//! every file in parallel; register the CustomResourceDefinitions found
//! anywhere among them (so a custom resource in `a.yaml` is checked against
//! its definition in `z.yaml`); then check every object in parallel against
//! that snapshot of kinds, and look for objects defined twice.

use std::collections::HashMap;
use std::path::PathBuf;

use rayon::prelude::*;
use schemas::kinds::Kinds;
use schemas::{Class, Diagnostic, Manifest, Registry, Valid, check::duplicates, decode_file};
use serde_json::Value;

/// The verdict on a set of files.
#[derive(Debug, Default)]
pub struct Report {
    /// Files read.
    pub files: usize,
    /// Objects found (valid or not).
    pub objects: usize,
    /// Objects that passed.
    pub valid: Vec<Valid>,
    /// Every problem, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Whether any file could not be read.
    pub fn has_io_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.class == Class::Io)
    }
}

/// Reads, decodes and validates files against the built-in kinds and the
/// definitions among them; `default_namespace` places namespaced objects
/// that name none (for the duplicate check).
pub fn validate_files(files: &[PathBuf], default_namespace: &str) -> Report {
    validate_files_with(files, default_namespace, &Registry::builtin())
}

/// [`validate_files`] with a registry that may already know custom kinds (a
/// cluster's, or `--crds` folders'); the definitions among the files are
/// added to it.
pub fn validate_files_with(
    files: &[PathBuf],
    default_namespace: &str,
    registry: &Registry,
) -> Report {
    check(read_files(files), default_namespace, registry)
}

/// Decodes and validates files already in memory (a Git tree, a folder
/// snapshot): `(name, contents)` pairs, on all cores.
pub fn validate_texts(files: &[(&str, &[u8])], default_namespace: &str) -> Report {
    validate_texts_with(files, default_namespace, &Registry::builtin())
}

/// [`validate_texts`] with a registry that may already know custom kinds;
/// the definitions among the files are added to it.
pub fn validate_texts_with(
    files: &[(&str, &[u8])],
    default_namespace: &str,
    registry: &Registry,
) -> Report {
    let decoded = files
        .par_iter()
        .map(|(name, bytes)| decode_text(name, bytes))
        .collect();
    check(decoded, default_namespace, registry)
}

/// What extra definition files (`korral validate --crds`) yielded.
#[derive(Debug, Default)]
pub struct Definitions {
    /// CustomResourceDefinitions registered.
    pub loaded: usize,
    /// Problems with them (and files that could not be read or decoded).
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads the CustomResourceDefinitions in `files` into `registry`; other
/// objects there are ignored, broken definitions are reported.
pub fn load_definitions(files: &[PathBuf], registry: &Registry) -> Definitions {
    let decoded = read_files(files);
    let mut out = Definitions::default();
    let mut crds = Vec::new();
    for f in decoded {
        out.diagnostics.extend(f.diagnostics);
        crds.extend(f.manifests.into_iter().filter(is_definition));
    }
    out.diagnostics
        .extend(schemas::crd::register_from_manifests(&crds, registry));
    let kinds = registry.snapshot();
    for m in crds {
        let name = m.object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match schemas::check_manifest(m, &kinds) {
            Ok(_) if !registry.custom_kinds(&name).is_empty() => out.loaded += 1,
            Ok(_) => {}
            Err(d) => out.diagnostics.extend(d),
        }
    }
    out
}

/// One file, decoded.
struct DecodedFile {
    manifests: Vec<Manifest>,
    /// Problems reading or decoding it.
    diagnostics: Vec<Diagnostic>,
}

impl DecodedFile {
    fn failed(d: Diagnostic) -> Self {
        DecodedFile {
            manifests: Vec::new(),
            diagnostics: vec![d],
        }
    }
}

fn read_files(files: &[PathBuf]) -> Vec<DecodedFile> {
    files
        .par_iter()
        .map(|path| {
            let name = path.display().to_string();
            match std::fs::read(path) {
                Ok(bytes) => decode_text(&name, &bytes),
                Err(e) => DecodedFile::failed(io_diag(&name, format!("cannot read: {e}"))),
            }
        })
        .collect()
}

fn decode_text(name: &str, bytes: &[u8]) -> DecodedFile {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let decoded = decode_file(name, text);
            DecodedFile {
                manifests: decoded.manifests,
                diagnostics: decoded.errors,
            }
        }
        Err(e) => DecodedFile::failed(io_diag(
            name,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )),
    }
}

fn is_definition(m: &Manifest) -> bool {
    m.object.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
        && m.object
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|a| a.starts_with("apiextensions.k8s.io/"))
}

/// Definitions among the input that define no kinds (they are invalid), by
/// the group and kind they declare: `(name, file, line)`.
type Broken = HashMap<(String, String), (String, String, u32)>;

fn broken_definitions(crds: &[Manifest], registry: &Registry) -> Broken {
    let mut out = Broken::new();
    for m in crds {
        let o = &m.object;
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        if !registry.custom_kinds(name).is_empty() {
            continue;
        }
        if let (Some(group), Some(kind)) = (
            o["spec"]["group"].as_str(),
            o["spec"]["names"]["kind"].as_str(),
        ) {
            out.insert(
                (group.to_string(), kind.to_string()),
                (name.to_string(), m.file.to_string(), m.line()),
            );
        }
    }
    out
}

/// The apiVersion and kind a manifest declares.
fn type_of(m: &Manifest) -> (String, String) {
    let field = |f: &str| m.object[f].as_str().unwrap_or("").to_string();
    (field("apiVersion"), field("kind"))
}

/// Points an unknown custom kind's error at its broken definition.
fn explain_unknown(api_version: &str, kind: &str, diags: &mut [Diagnostic], broken: &Broken) {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if let Some((name, file, line)) = broken.get(&(group.to_string(), kind.to_string())) {
        for d in diags.iter_mut().filter(|d| d.class == Class::UnknownKind) {
            d.message = format!(
                "no kind {kind:?} is served at apiVersion {api_version:?}: its CustomResourceDefinition {name} ({file}:{line}) is invalid; fix its errors first"
            );
        }
    }
}

/// The second and third passes: register the definitions, check every object.
fn check(decoded: Vec<DecodedFile>, default_namespace: &str, registry: &Registry) -> Report {
    let crds: Vec<Manifest> = decoded
        .iter()
        .flat_map(|f| &f.manifests)
        .filter(|m| is_definition(m))
        .cloned()
        .collect();
    let mut definition_errors = schemas::crd::register_from_manifests(&crds, registry);
    let broken = broken_definitions(&crds, registry);
    let kinds: std::sync::Arc<Kinds> = registry.snapshot();

    let mut report = Report {
        files: decoded.len(),
        ..Default::default()
    };
    let mut flat: Vec<(usize, Manifest)> = Vec::new();
    let mut decode_errors: Vec<Vec<Diagnostic>> = Vec::with_capacity(decoded.len());
    for (i, f) in decoded.into_iter().enumerate() {
        report.objects += f.manifests.len() + f.diagnostics.len();
        decode_errors.push(f.diagnostics);
        flat.extend(f.manifests.into_iter().map(|m| (i, m)));
    }
    let verdicts: Vec<(usize, Result<Valid, Vec<Diagnostic>>)> = flat
        .into_par_iter()
        .map(|(i, m)| {
            let declared = (!broken.is_empty()).then(|| type_of(&m));
            let mut r = schemas::check_manifest(m, &kinds);
            if let (Err(diags), Some((api_version, kind))) = (&mut r, declared) {
                explain_unknown(&api_version, &kind, diags, &broken);
            }
            (i, r)
        })
        .collect();
    let mut verdicts = verdicts.into_iter().peekable();
    for (i, errors) in decode_errors.into_iter().enumerate() {
        report.diagnostics.extend(errors);
        while let Some((_, r)) = verdicts.next_if(|(f, _)| *f == i) {
            match r {
                Ok(v) => report.valid.push(v),
                Err(d) => report.diagnostics.extend(d),
            }
        }
    }
    // a definition that decodes but cannot be read as one: already located
    definition_errors.retain(|d| !report.diagnostics.contains(d));
    report.diagnostics.extend(definition_errors);
    report
        .diagnostics
        .extend(duplicates(&report.valid, default_namespace));
    report
}

fn io_diag(file: &str, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        line: 0,
        column: 0,
        document: None,
        object: None,
        path: None,
        class: Class::Io,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              size: {type: integer, maximum: 10}\n            x-kubernetes-validations:\n            - rule: has(self.size)\n              message: a widget needs a size\n";

    fn widget(name: &str, spec: &str) -> String {
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        )
    }

    #[test]
    fn custom_resources_check_against_a_definition_in_a_later_file() {
        let a = widget("a", "{size: 3}")
            + "---\n"
            + &widget("b", "{size: 11}")
            + "---\n"
            + &widget("c", "{}");
        let files = [("a.yaml", a.as_bytes()), ("z.yaml", CRD.as_bytes())];
        let report = validate_texts(&files, "default");
        let shown: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(report.files, 2);
        assert_eq!(report.objects, 4);
        assert_eq!(report.valid.len(), 2, "{shown:#?}");
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(
            shown[0].starts_with("a.yaml:9:") && shown[0].contains("Widget b: spec.size"),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("a.yaml:14:") && shown[1].contains("a widget needs a size"),
            "{shown:#?}"
        );
    }

    #[test]
    fn rules_judge_objects_defaulted_as_the_api_server_does() {
        // podManagementPolicy and updateStrategy are required once defaulted
        let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: postgres}]}\n";
        // the CEL rule reads `mode`, which only the schema's default sets
        let crd = CRD.replace(
            "size: {type: integer, maximum: 10}",
            "size: {type: integer, maximum: 10}\n              mode: {type: string, default: fast}",
        )
        .replace("rule: has(self.size)", "rule: self.mode == 'fast' || has(self.size)");
        let w = widget("a", "{size: 1}");
        let files = [
            ("sts.yaml", sts.as_bytes()),
            ("crd.yaml", crd.as_bytes()),
            ("w.yaml", w.as_bytes()),
        ];
        let report = validate_texts(&files, "default");
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
        assert_eq!(report.valid.len(), 3);
    }

    #[test]
    fn a_broken_definition_is_named_in_its_kinds_errors() {
        let broken = CRD.replace("scope: Namespaced", "scope: Sideways");
        let w = widget("a", "{size: 3}");
        let files = [("a.yaml", w.as_bytes()), ("z.yaml", broken.as_bytes())];
        let report = validate_texts(&files, "default");
        let shown: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
        assert!(
            shown.iter().any(|d| d.starts_with("a.yaml:2:")
                && d.contains("Widget a: kind:")
                && d.contains(
                    "its CustomResourceDefinition widgets.example.com (z.yaml:1) is invalid"
                )),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d.starts_with("z.yaml:") && d.contains("spec.scope")),
            "{shown:#?}"
        );
    }

    #[test]
    fn definitions_from_elsewhere_are_loaded_and_checked_but_not_counted() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("crd.yaml"), CRD).expect("write");
        std::fs::write(
            dir.path().join("broken.yaml"),
            CRD.replace("maximum: 10", "maximum: ten"),
        )
        .expect("write");
        std::fs::write(
            dir.path().join("cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n",
        )
        .expect("write");
        let registry = Registry::builtin();
        let files = crate::files::collect(&[dir.path().to_path_buf()]).expect("files");
        let defs = load_definitions(&files, &registry);
        assert_eq!(defs.loaded, 1, "{:#?}", defs.diagnostics);
        assert_eq!(defs.diagnostics.len(), 1, "{:#?}", defs.diagnostics);
        assert!(defs.diagnostics[0].file.ends_with("broken.yaml"));
        let w = widget("a", "{size: 3}");
        let report = validate_texts_with(&[("w.yaml", w.as_bytes())], "default", &registry);
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
        assert_eq!((report.files, report.objects), (1, 1));
    }
}
