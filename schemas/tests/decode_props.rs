//! Property tests: random and mutated manifests never make the decoder or the
//! validator panic; every failure is a located diagnostic.

use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("../../fixtures/valid/anchors.yaml"),
    include_str!("../../fixtures/valid/multi-document.yaml"),
    include_str!("../../fixtures/valid/list.yaml"),
    include_str!("../../fixtures/valid/cluster.yaml"),
    include_str!("../../fixtures/valid/kubectl-generated.yaml"),
    include_str!("../../fixtures/valid/pod.json"),
    include_str!("../../fixtures/demo/deployment.yaml"),
];

/// Characters that matter to YAML and JSON, plus some that do not.
const ALPHABET: &[char] = &[
    ':', '-', ' ', '\n', '\t', '"', '\'', '[', ']', '{', '}', ',', '#', '&', '*', '!', '|', '>',
    '%', '@', '`', '?', '<', '0', '1', '9', '.', 'a', 'e', 'x', '~', '\\', 'é', '\u{0}', '\r',
];

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    Truncate(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = proptest::sample::select(ALPHABET);
    prop_oneof![
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::Truncate),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len().max(1);
        match *e {
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % n);
            }
            Edit::Replace(i, c) if !chars.is_empty() => chars[i % n] = c,
            Edit::Truncate(i) => chars.truncate(i % (chars.len() + 1)),
            Edit::DuplicateLine(i) | Edit::SwapLines(i, _) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.split('\n').collect();
                let k = i % lines.len();
                if let Edit::SwapLines(_, j) = *e {
                    let j = j % lines.len();
                    lines.swap(k, j);
                } else {
                    lines.insert(k, lines[k]);
                }
                chars = lines.join("\n").chars().collect();
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn check(name: &str, text: &str) {
    let decoded = schemas::decode_file(name, text);
    for d in &decoded.errors {
        assert!(!d.message.is_empty());
        assert_eq!(d.file, name);
    }
    let checked = schemas::check_all(decoded.manifests, "default");
    for d in &checked.diagnostics {
        assert!(!d.message.is_empty());
    }
    for v in &checked.valid {
        // what validates must also default cleanly, as the API server will do
        v.info
            .apply_defaults(v.object().clone())
            .expect("valid objects default");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_manifests_never_panic(seed in 0..SEEDS.len(), edits in proptest::collection::vec(edit(), 1..8)) {
        let text = apply(SEEDS[seed], &edits);
        check("mutated.yaml", &text);
        check("mutated.json", &text);
    }

    #[test]
    fn random_text_never_panics(text in "(?s).{0,400}") {
        check("random.yaml", &text);
        check("random.json", &text);
    }

    #[test]
    fn random_yaml_shapes_never_panic(chars in proptest::collection::vec(proptest::sample::select(ALPHABET), 0..300)) {
        let text: String = chars.into_iter().collect();
        check("shapes.yaml", &text);
    }
}
