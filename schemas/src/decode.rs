//! Decoding manifest files: split YAML streams into documents the way
//! kubectl does, parse each with limits (size, depth, aliases, duplicate
//! keys), expand `List` kinds, and keep every node's position.

use std::sync::Arc;

use serde_json::Value;
use serde_saphyr::options::DuplicateKeyPolicy;

use crate::diagnostic::{Class, Diagnostic};
use crate::located::{Located, Node};
use crate::path::FieldPath;

/// The largest document accepted (the API server's request limit is larger;
/// etcd's value limit is 1.5 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// The deepest nesting accepted; real manifests stay under 20.
pub const MAX_DEPTH: usize = 64;

/// One object read from a file: a whole document, or one item of a `List`.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The file, as given.
    pub file: Arc<str>,
    /// 0-based index of the document in the file.
    pub document: usize,
    /// Index in the document's `items` when it was a `List`.
    pub item: Option<usize>,
    /// The object as JSON, explicit nulls removed.
    pub object: Value,
    text: Arc<str>,
    tree: Arc<Located>,
    prefix: FieldPath,
}

impl Manifest {
    /// The line and column of a field of this object (its deepest existing ancestor when absent).
    pub fn position(&self, path: &FieldPath) -> (u32, u32) {
        self.tree.position_of(&self.prefix.join(path))
    }

    /// The scalar at `path` exactly as written in the file (e.g. `1.10`, which
    /// the JSON value shows as `1.1`), when the file is YAML with positions.
    pub fn raw_scalar(&self, path: &FieldPath) -> Option<&str> {
        let node = self.tree.node_at(&self.prefix.join(path))?;
        let line = self
            .text
            .lines()
            .nth(usize::try_from(node.line).ok()?.checked_sub(1)?)?;
        let start = line
            .char_indices()
            .nth(usize::try_from(node.column).ok()?.checked_sub(1)?)?
            .0;
        let rest = &line[start..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#'))
            .unwrap_or(rest.len());
        Some(&rest[..end]).filter(|t| !t.is_empty())
    }

    /// The line the object starts at.
    pub fn line(&self) -> u32 {
        self.position(&FieldPath::root()).0
    }

    /// A manifest for an object that did not come from a file (e.g. an API request body).
    pub fn from_value(file: &str, object: Value) -> Self {
        Manifest {
            file: file.into(),
            document: 0,
            item: None,
            object,
            text: "".into(),
            tree: Arc::new(Located {
                line: 0,
                column: 0,
                node: Node::Null,
            }),
            prefix: FieldPath::root(),
        }
    }
}

/// What a file decoded into: objects, and problems that stopped some documents.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The objects, in file order.
    pub manifests: Vec<Manifest>,
    /// Documents that could not be decoded.
    pub errors: Vec<Diagnostic>,
}

/// A chunk of a YAML stream between `---` separator lines.
struct Chunk<'a> {
    text: &'a str,
    /// 1-based line of the chunk's first line.
    first_line: u32,
}

/// Splits a YAML stream on separator lines: `---` alone or followed by a comment,
/// as kubectl's YAML reader does.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u32;
    let mut pos = 0usize;
    for (line_no, line) in (1u32..).zip(text.split_inclusive('\n')) {
        let content = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = content.strip_prefix("---") {
            let rest = rest.trim();
            if rest.is_empty() || rest.starts_with('#') {
                chunks.push(Chunk {
                    text: &text[start..pos],
                    first_line: start_line,
                });
                start = pos + line.len();
                start_line = line_no + 1;
            }
        }
        pos += line.len();
    }
    chunks.push(Chunk {
        text: &text[start..],
        first_line: start_line,
    });
    chunks
}

fn parse_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_aliases: 10_000,
            max_anchors: 10_000,
            max_nodes: 1_000_000,
            max_total_scalar_bytes: 4 * MAX_DOCUMENT_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 1_000,
        },
        duplicate_keys: DuplicateKeyPolicy::Error,
        strict_booleans: true,
        // kubectl's YAML (go-yaml v2, YAML 1.1): `defaultMode: 0644` is octal 420
        legacy_octal_numbers: true,
        with_snippet: false,
    }
}

fn shift_lines(node: &mut Located, by: u32) {
    if node.line > 0 {
        node.line += by;
    }
    match &mut node.node {
        Node::Seq(items) => items.iter_mut().for_each(|i| shift_lines(i, by)),
        Node::Map(entries) => {
            for (k, v) in entries {
                if k.line > 0 {
                    k.line += by;
                }
                shift_lines(v, by);
            }
        }
        _ => {}
    }
}

fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "..." || t.starts_with('%')
    })
}

/// Drops a trailing " at line X column Y" (the diagnostic carries the position).
fn strip_location(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

/// Makes a parser message readable: the position goes into the diagnostic's
/// line and column, the text says what went wrong and what to do.
fn syntax_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach;
    let mut inner = e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = inner {
        inner = error;
    }
    match inner {
        E::DuplicateMappingKey { key, .. } => format!(
            "duplicate key {:?} in a mapping: YAML requires unique keys (other tools silently keep one of the values)",
            key.as_deref().unwrap_or("?")
        ),
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. }
        | E::Budget { breach: BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. }, .. } => {
            "YAML aliases expand past korral's limits (an alias bomb?): write the values out or nest fewer aliases".into()
        }
        E::Budget { breach: BudgetBreach::Depth { .. }, .. } => {
            format!("nesting deeper than {MAX_DEPTH} levels: real manifests nest far less; is the structure generated by mistake?")
        }
        E::Budget { breach, .. } => format!("document exceeds a parser limit: {breach:?}"),
        other => strip_location(&other.to_string()).to_string(),
    }
}

/// Decodes a YAML or JSON file (JSON is YAML's flow style; `.json` files that
/// YAML rejects are read with a JSON parser).
pub fn decode_file(file: &str, text: &str) -> Decoded {
    let file: Arc<str> = file.into();
    let shared_text: Arc<str> = text.into();
    let mut out = Decoded::default();
    let is_json = file.ends_with(".json");
    let mut document = 0usize;
    let chunks = if is_json {
        vec![Chunk {
            text,
            first_line: 1,
        }]
    } else {
        split_documents(text)
    };
    for chunk in chunks {
        if is_blank_yaml(chunk.text) {
            continue;
        }
        if chunk.text.len() > MAX_DOCUMENT_BYTES {
            out.errors.push(Diagnostic {
                file: file.to_string(),
                line: chunk.first_line,
                column: 1,
                document: Some(document),
                object: None,
                path: None,
                class: Class::TooLarge,
                message: format!(
                    "document is {} bytes, over the limit of {} bytes (1 MiB)",
                    chunk.text.len(),
                    MAX_DOCUMENT_BYTES
                ),
            });
            document += 1;
            continue;
        }
        if is_json && let Err(je) = serde_json::from_str::<serde::de::IgnoredAny>(chunk.text) {
            out.errors.push(Diagnostic {
                file: file.to_string(),
                line: u32::try_from(je.line()).unwrap_or(0),
                column: u32::try_from(je.column()).unwrap_or(0),
                document: Some(document),
                object: None,
                path: None,
                class: Class::Syntax,
                message: format!("invalid JSON: {}", strip_location(&je.to_string())),
            });
            continue;
        }
        let parsed: Result<Vec<Located>, serde_saphyr::Error> =
            serde_saphyr::from_str_multiple_with_options(chunk.text, parse_options());
        match parsed {
            Ok(docs) => {
                for mut tree in docs {
                    shift_lines(&mut tree, chunk.first_line - 1);
                    if tree.node != Node::Null {
                        push_document(&mut out, &file, &shared_text, document, tree);
                    }
                    document += 1;
                }
            }
            Err(_) if is_json => {
                // YAML could not read it; the JSON parser can (it passed the
                // strict check below), so keep the object without positions.
                if let Ok(v) = serde_json::from_str::<Value>(chunk.text) {
                    let tree = Located {
                        line: 1,
                        column: 1,
                        node: Node::Null,
                    };
                    push_value(&mut out, &file, &shared_text, document, tree, v);
                }
                document += 1;
            }
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| {
                        (
                            u32::try_from(l.line()).unwrap_or(0) + chunk.first_line - 1,
                            u32::try_from(l.column()).unwrap_or(0),
                        )
                    })
                    .unwrap_or((chunk.first_line, 0));
                out.errors.push(Diagnostic {
                    file: file.to_string(),
                    line,
                    column,
                    document: Some(document),
                    object: None,
                    path: None,
                    class: Class::Syntax,
                    message: format!("invalid YAML: {}", syntax_message(&e)),
                });
                document += 1;
            }
        }
    }
    out
}

fn push_document(
    out: &mut Decoded,
    file: &Arc<str>,
    text: &Arc<str>,
    document: usize,
    tree: Located,
) {
    let value = tree.to_json();
    push_value(out, file, text, document, tree, value);
}

/// Records a document, expanding `kind: List` (and `*List` kinds with `items`) into its items.
fn push_value(
    out: &mut Decoded,
    file: &Arc<str>,
    text: &Arc<str>,
    document: usize,
    tree: Located,
    value: Value,
) {
    let tree = Arc::new(tree);
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if let (true, Value::Object(mut obj)) = (is_list, value.clone())
        && let Some(Value::Array(items)) = obj.remove("items")
    {
        for (i, item) in items.into_iter().enumerate() {
            out.manifests.push(Manifest {
                file: file.clone(),
                document,
                item: Some(i),
                object: item,
                text: text.clone(),
                tree: tree.clone(),
                prefix: FieldPath::fields("items").index(i),
            });
        }
        return;
    }
    out.manifests.push(Manifest {
        file: file.clone(),
        document,
        item: None,
        object: value,
        text: text.clone(),
        tree,
        prefix: FieldPath::root(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_kubectl_and_keeps_absolute_lines() {
        let text = "a: 1\n---\n# comment only\n--- # trailing comment\nkind: X\nb:\n  c: 2\n";
        let d = decode_file("f.yaml", text);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.manifests.len(), 2);
        assert_eq!(d.manifests[0].document, 0);
        assert_eq!(
            d.manifests[1].document, 1,
            "blank documents are not counted"
        );
        assert_eq!(d.manifests[1].line(), 5);
        assert_eq!(d.manifests[1].position(&FieldPath::fields("b.c")), (7, 3));
    }

    #[test]
    fn lists_expand_into_items_with_positions() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- kind: A\n  x: 1\n- kind: B\n  y: 2\n";
        let d = decode_file("f.yaml", text);
        assert_eq!(d.manifests.len(), 2);
        assert_eq!(d.manifests[1].object["kind"], "B");
        assert_eq!(d.manifests[1].item, Some(1));
        assert_eq!(d.manifests[1].position(&FieldPath::fields("y")), (7, 3));
    }

    #[test]
    fn scalars_follow_yaml_1_2_with_kubectls_octal() {
        let d = decode_file("f.yaml", "a: yes\nb: true\nc: 0755\nd: '1'\ne: 1.5\nf: ~\n");
        let v = &d.manifests[0].object;
        assert_eq!(v["a"], "yes");
        assert_eq!(v["b"], true);
        // kubectl reads `defaultMode: 0755` as octal, and so do we
        assert_eq!(v["c"], 0o755);
        assert_eq!(v["d"], "1");
        assert_eq!(v["e"], 1.5);
        assert!(v.get("f").is_none(), "explicit nulls are dropped");
    }

    #[test]
    fn duplicate_keys_are_rejected_with_their_line() {
        let d = decode_file("f.yaml", "kind: A\nmetadata:\n  name: a\n  name: b\n");
        assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
        assert_eq!(d.errors[0].class, Class::Syntax);
        assert_eq!(d.errors[0].line, 4, "{}", d.errors[0]);
        assert!(
            d.errors[0].message.to_lowercase().contains("duplicate"),
            "{}",
            d.errors[0]
        );
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let d = decode_file("bomb.yaml", &bomb);
        assert!(d.manifests.is_empty());
        assert_eq!(d.errors.len(), 1);
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let d = decode_file("deep.yaml", &deep);
        assert!(d.manifests.is_empty());
        assert_eq!(d.errors.len(), 1);
    }

    #[test]
    fn json_files_decode_with_positions() {
        let d = decode_file(
            "f.json",
            "{\n  \"kind\": \"A\",\n  \"spec\": {\"x\": 1}\n}\n",
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.manifests[0].object["spec"]["x"], 1);
        assert_eq!(d.manifests[0].position(&FieldPath::fields("spec.x")).0, 3);
        let d = decode_file("g.json", "{\"kind\": }");
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].class, Class::Syntax);
    }

    #[test]
    fn oversized_documents_are_refused_without_parsing() {
        let big = format!(
            "kind: ConfigMap\ndata:\n  a: \"{}\"\n",
            "x".repeat(MAX_DOCUMENT_BYTES)
        );
        let d = decode_file("big.yaml", &format!("kind: A\n---\n{big}"));
        assert_eq!(d.manifests.len(), 1);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].class, Class::TooLarge);
        assert_eq!(d.errors[0].line, 3);
        assert_eq!(d.errors[0].document, Some(1));
    }
}
