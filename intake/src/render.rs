//! Rendering a snapshot into the desired state: decode and validate every
//! file with the API server's own verdict (on all cores; custom resources
//! against the source's CustomResourceDefinitions and those the caller's
//! registry holds, e.g. the cluster's), place namespaced objects that name
//! no namespace, stamp the owner, and sort into sync order. Any problem
//! anywhere means no desired state at all.

use std::sync::Arc;

use schemas::kinds::Kinds;
use schemas::{Class, Diagnostic, FieldPath, KindInfo, Manifest, Registry};
use serde_json::Value;

use crate::object::{ObjectKey, sync_rank};
use crate::owner::{Owner, stamp};
use crate::source::Snapshot;
use crate::validate::validate_texts_with;

/// One object the source declares.
#[derive(Clone, Debug)]
pub struct DesiredObject {
    /// Its kind.
    pub info: Arc<KindInfo>,
    /// Its identity.
    pub key: ObjectKey,
    /// The configuration to apply: as written, namespace placed, owner stamped.
    pub object: Value,
    /// Where it was read (for positions of errors found later).
    pub manifest: Manifest,
}

impl DesiredObject {
    /// The kustomization this object was built from (with the file
    /// kustomize says it came from, when recorded); `None` for an object
    /// read from a manifest file.
    pub fn built_from(&self) -> Option<&str> {
        crate::kustomize::built_from(&self.manifest.file)
    }

    /// A diagnostic about `path` of this object, located in its file.
    pub fn diagnostic(&self, path: Option<&str>, message: String) -> Diagnostic {
        let fp = path.map(parse_path).unwrap_or_else(FieldPath::root);
        let (line, column) = self.manifest.position(&fp);
        Diagnostic {
            file: self.manifest.file.to_string(),
            line,
            column,
            document: Some(self.manifest.document),
            object: schemas::check::describe(&self.manifest.object),
            path: path.map(str::to_string),
            class: Class::Invalid,
            message,
        }
    }
}

/// A field path as the API server writes it (`spec.template.spec.containers[0].image`).
pub fn parse_path(path: &str) -> FieldPath {
    let mut fp = FieldPath::root();
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            fp = fp.key(name.to_string());
        }
        while let Some(end) = rest.find(']') {
            let inner = &rest[1..end];
            fp = match inner.parse::<usize>() {
                Ok(i) => fp.index(i),
                Err(_) => fp.key(inner.to_string()),
            };
            rest = &rest[end + 1..];
        }
    }
    fp
}

/// Everything a source declares at one revision, in sync order.
#[derive(Clone, Debug)]
pub struct Desired {
    /// The revision rendered.
    pub revision: String,
    /// The objects, sorted by [`sync_rank`], then key.
    pub objects: Vec<DesiredObject>,
    /// The kinds the render knew (built-in, the registry's and the source's
    /// custom kinds): where inventory entries and live objects find theirs.
    pub kinds: Arc<Kinds>,
    /// Hook Jobs, run around the sync instead of applied with the objects
    /// (moved here by [`crate::hooks::split`]).
    pub hooks: Vec<DesiredObject>,
}

/// Renders a snapshot for `owner` (stamped on every object; `None` leaves
/// them unstamped); namespaced objects that name none go to
/// `default_namespace`. Custom resources are checked against the
/// definitions in the snapshot. Returns every problem found when anything
/// is wrong.
pub fn render(
    snapshot: &Snapshot,
    owner: Option<&Owner>,
    default_namespace: &str,
) -> Result<Desired, Vec<Diagnostic>> {
    render_with(snapshot, owner, default_namespace, &Registry::builtin())
}

/// [`render`] with a registry that already knows custom kinds (the
/// cluster's definitions); the snapshot's definitions are added to it and
/// take precedence.
pub fn render_with(
    snapshot: &Snapshot,
    owner: Option<&Owner>,
    default_namespace: &str,
    registry: &Registry,
) -> Result<Desired, Vec<Diagnostic>> {
    if snapshot.files.is_empty() {
        return Err(vec![Diagnostic {
            file: String::new(),
            line: 0,
            column: 0,
            document: None,
            object: None,
            path: None,
            class: Class::Io,
            message: "no manifest files (*.yaml, *.yml, *.json) found: refusing to treat an empty source as \"delete everything\"".into(),
        }]);
    }
    // a kustomization below the source's path is not built (only the
    // path's own is): say so instead of calling its kind unknown
    let unbuilt: Vec<Diagnostic> = snapshot
        .files
        .iter()
        .filter(|f| crate::kustomize::is_unbuilt_kustomization(&f.path, &f.data))
        .map(|f| Diagnostic {
            file: f.path.clone(),
            line: 0,
            column: 0,
            document: None,
            object: None,
            path: None,
            class: Class::Invalid,
            message: "a kustomization below the source's path is not built: point spec.path at its folder (one source per overlay)".into(),
        })
        .collect();
    if !unbuilt.is_empty() {
        return Err(unbuilt);
    }
    let inputs: Vec<(&str, &[u8])> = snapshot
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.data.as_slice()))
        .collect();
    let mut report = validate_texts_with(&inputs, default_namespace, registry);
    if !report.diagnostics.is_empty() {
        report
            .diagnostics
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        return Err(report.diagnostics);
    }
    let mut objects: Vec<DesiredObject> = Vec::with_capacity(report.valid.len());
    for v in report.valid {
        let info = v.info;
        let mut object = v.manifest.object.clone();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            if info.namespaced {
                let named = meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                if !named {
                    meta.insert("namespace".into(), default_namespace.into());
                }
            } else {
                meta.remove("namespace");
            }
        }
        if let Some(owner) = owner {
            stamp(&mut object, owner);
        }
        objects.push(DesiredObject {
            key: ObjectKey::of(&info, &object),
            info,
            object,
            manifest: v.manifest,
        });
    }
    objects.sort_by(|a, b| (sync_rank(&a.info), &a.key).cmp(&(sync_rank(&b.info), &b.key)));
    Ok(Desired {
        revision: snapshot.revision.clone(),
        objects,
        kinds: registry.snapshot(),
        hooks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn snap(files: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            revision: "r1".into(),
            files: files
                .iter()
                .map(|(p, d)| SourceFile {
                    path: p.to_string(),
                    data: d.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn renders_in_apply_order_with_namespaces_placed_and_owner_stamped() {
        let s = snap(&[
            (
                "app.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: other}\n",
            ),
            (
                "ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
            ),
        ]);
        let d = render(&s, Some(&Owner::new("team", "src")), "team").expect("valid");
        let keys: Vec<String> = d.objects.iter().map(|o| o.key.to_string()).collect();
        assert_eq!(
            keys,
            vec!["Namespace other", "ConfigMap other/cfg", "Service team/web"]
        );
        assert_eq!(d.objects[2].object["metadata"]["namespace"], "team");
        assert_eq!(
            d.objects[2].object["metadata"]["annotations"]["korral.dev/source"],
            "team/src"
        );
    }

    #[test]
    fn every_error_is_reported_with_its_location_and_nothing_renders() {
        let s = snap(&[
            (
                "a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
            ),
            (
                "deploy/web.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: -1\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: x}]\n",
            ),
            (
                "b.yaml",
                "apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n",
            ),
        ]);
        let errs = render(&s, Some(&Owner::new("default", "s")), "default").expect_err("invalid");
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 2, "{shown:?}");
        assert!(shown[0].starts_with("b.yaml:2:"), "{shown:?}");
        assert!(
            shown[1].starts_with("deploy/web.yaml:5:") && shown[1].contains("spec.replicas"),
            "{shown:?}"
        );
        assert!(render(&snap(&[]), None, "d").is_err());
        let nested = snap(&[
            (
                "a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
            ),
            (
                "overlays/prod/kustomization.yaml",
                "resources: [../../base]\n",
            ),
        ]);
        let errs = render(&nested, None, "d").expect_err("a kustomization not built");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].file, "overlays/prod/kustomization.yaml");
        assert!(errs[0].message.contains("spec.path"), "{}", errs[0]);
    }

    #[test]
    fn api_paths_parse_into_field_paths() {
        assert_eq!(
            parse_path("spec.template.spec.containers[0].image").to_string(),
            FieldPath::fields("spec.template.spec")
                .key("containers")
                .index(0)
                .key("image")
                .to_string()
        );
        assert_eq!(
            parse_path("metadata.labels[app]").to_string(),
            FieldPath::fields("metadata.labels").key("app").to_string()
        );
    }
}
