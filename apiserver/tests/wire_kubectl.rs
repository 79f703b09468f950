//! Requests read as kube-apiserver 1.33 reads them, table-driven over raw
//! HTTP: query booleans (apimachinery's rule: only `0` and `false` are
//! false), integers with Go's `strconv` errors, the `Validate*Options` 422s
//! of every verb, WatchList (`sendInitialEvents`), DELETE options from the
//! body or the query, paths with extra slashes, content negotiation, gzip
//! and pretty printing.

use crate::cluster;

use cluster::{Cluster, Reply, text};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// One request and what kube-apiserver answers to it.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: &'static [&'static str],
    body: Option<&'static str>,
    code: u16,
    /// Text the body must contain.
    contains: &'static str,
}

fn get(what: &'static str, path: impl Into<String>, code: u16, contains: &'static str) -> Case {
    Case {
        what,
        method: "GET",
        path: path.into(),
        headers: &[],
        body: None,
        code,
        contains,
    }
}

fn run(c: &Cluster, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let r: Reply = c.curl(
            case.method,
            &case.path,
            case.headers,
            case.body.map(str::as_bytes),
        );
        let body = text(&r.body);
        if r.code != case.code || !body.contains(case.contains) {
            failures.push(format!(
                "{} ({} {}): got {} {}\n  want {} containing {:?}",
                case.what,
                case.method,
                case.path,
                r.code,
                body.chars().take(400).collect::<String>(),
                case.code,
                case.contains
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn seed(c: &Cluster) {
    let r = c.curl(
        "POST",
        CMS,
        &["Content-Type: application/json"],
        Some(br#"{"metadata":{"name":"wire","labels":{"app":"wire"}},"data":{"a":"1"}}"#),
    );
    assert_eq!(r.code, 201, "{}", text(&r.body));
}

#[test]
fn list_and_watch_parameters_parse_as_kube_apiserver() {
    let c = Cluster::start();
    seed(&c);
    let watch = |q: &str| format!("{CMS}?{q}&timeoutSeconds=1");
    let list_kind = "\"kind\":\"ConfigMapList\"";
    let added = "{\"type\":\"ADDED\"";
    let invalid = "ListOptions.meta.k8s.io \\\"\\\" is invalid: ";
    run(
        &c,
        &[
            // booleans: absent, 0 and any case of false are false; the rest true
            get(
                "watch=True (kubernetes_asyncio)",
                watch("watch=True"),
                200,
                added,
            ),
            get("watch=1", watch("watch=1"), 200, added),
            get("watch=yes is true", watch("watch=yes"), 200, added),
            get("watch with no value is true", watch("watch"), 200, added),
            get("watch=FALSE lists", watch("watch=FALSE"), 200, list_kind),
            get("watch=0 lists", watch("watch=0"), 200, list_kind),
            // integers
            get(
                "limit=x",
                format!("{CMS}?limit=x"),
                400,
                "strconv.ParseInt: parsing \\\"x\\\": invalid syntax",
            ),
            get(
                "limit with an empty value",
                format!("{CMS}?limit="),
                400,
                "strconv.ParseInt: parsing \\\"\\\": invalid syntax",
            ),
            get(
                "the first of repeated values counts",
                format!("{CMS}?limit=1&limit=x"),
                200,
                list_kind,
            ),
            get(
                "timeoutSeconds out of range",
                format!("{CMS}?watch=1&timeoutSeconds=99999999999999999999"),
                400,
                "value out of range",
            ),
            // resourceVersionMatch and sendInitialEvents
            get(
                "resourceVersionMatch without resourceVersion",
                format!("{CMS}?resourceVersionMatch=Exact"),
                422,
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ),
            get(
                "resourceVersionMatch unknown",
                format!("{CMS}?resourceVersion=1&resourceVersionMatch=exact"),
                422,
                "resourceVersionMatch: Unsupported value: \\\"exact\\\": supported values: \\\"Exact\\\", \\\"NotOlderThan\\\", \\\"\\\"",
            ),
            get(
                "sendInitialEvents on a list",
                format!("{CMS}?sendInitialEvents=true"),
                422,
                "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list",
            ),
            get(
                "sendInitialEvents without NotOlderThan",
                watch("watch=1&sendInitialEvents=true"),
                422,
                invalid,
            ),
            get(
                "resourceVersionMatch on a plain watch",
                watch("watch=1&resourceVersionMatch=NotOlderThan"),
                422,
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ),
            // Kubernetes 1.33 ships with the WatchList gate off
            get(
                "WatchList with the gate off",
                watch(
                    "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
                ),
                422,
                "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ),
            // selectors
            get(
                "a field selector the kind does not have",
                format!("{CMS}?fieldSelector=spec.foo%3Dbar"),
                400,
                "\\\"spec.foo\\\" is not a known field selector: only \\\"metadata.name\\\", \\\"metadata.namespace\\\"",
            ),
            get(
                "a field selector pods do not have",
                "/api/v1/namespaces/default/pods?fieldSelector=spec.foo%3Dbar",
                400,
                "field label not supported: spec.foo",
            ),
            get(
                "a label selector",
                format!("{CMS}?labelSelector=app%20in%20(wire,other)"),
                200,
                "\"name\":\"wire\"",
            ),
            // Table options
            Case {
                what: "includeObject=all",
                method: "GET",
                path: format!("{CMS}?includeObject=all"),
                headers: &["Accept: application/json;as=Table;v=v1;g=meta.k8s.io"],
                body: None,
                code: 400,
                contains: "Unable to convert to Table as requested: includeObject: Invalid value: \\\"all\\\": must be 'Metadata', 'Object', 'None', or empty",
            },
        ],
    );
}

#[test]
fn with_the_watch_list_gate_watches_end_their_initial_events_with_a_bookmark() {
    let c = Cluster::start_with(|config| config.watch_list = true);
    seed(&c);
    let watch = |q: &str| format!("{CMS}?{q}&timeoutSeconds=1");
    let end = "\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}";
    // the WatchList form, and (SetListOptionsDefaults) a watch from no version
    for q in [
        "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        "watch=1&allowWatchBookmarks=true",
        "watch=1&resourceVersion=0&allowWatchBookmarks=true",
    ] {
        let r = c.curl("GET", &watch(q), &[], None);
        assert_eq!(r.code, 200, "{q}: {}", text(&r.body));
        assert!(text(&r.body).contains(end), "{q}: {}", text(&r.body));
    }
    // a watch from a version has no initial events
    let r = c.curl(
        "GET",
        &watch("watch=1&resourceVersion=1&allowWatchBookmarks=true"),
        &[],
        None,
    );
    assert!(!text(&r.body).contains(end), "{}", text(&r.body));
    // a WatchList's initial objects come before its bookmark
    let r = c.curl(
        "GET",
        &watch(
            "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        ),
        &[],
        None,
    );
    let lines: Vec<serde_json::Value> = text(&r.body)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect();
    assert_eq!(lines[0]["type"], "ADDED", "{lines:?}");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "wire");
    assert_eq!(lines[1]["type"], "BOOKMARK", "{lines:?}");
    // sendInitialEvents=false starts at the newest version: no ADDED
    let r = c.curl(
        "GET",
        &watch(
            "watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        ),
        &[],
        None,
    );
    assert!(!text(&r.body).contains("ADDED"), "{}", text(&r.body));
}

#[test]
fn write_and_delete_options_are_checked_as_kube_apiserver_checks_them() {
    let c = Cluster::start();
    seed(&c);
    let json = &["Content-Type: application/json"][..];
    let merge = &["Content-Type: application/merge-patch+json"][..];
    let apply = &["Content-Type: application/apply-patch+yaml"][..];
    let new_cm = Some(r#"{"metadata":{"name":"wire-2"}}"#);
    let case = |what, method, path: String, headers, body, code, contains| Case {
        what,
        method,
        path,
        headers,
        body,
        code,
        contains,
    };
    run(
        &c,
        &[
            case(
                "dryRun=Yes on create",
                "POST",
                format!("{CMS}?dryRun=Yes"),
                json,
                new_cm,
                422,
                "CreateOptions.meta.k8s.io \\\"\\\" is invalid: dryRun: Unsupported value: []string{\\\"Yes\\\"}: supported values: \\\"All\\\"",
            ),
            case(
                "fieldValidation in the wrong case",
                "POST",
                format!("{CMS}?fieldValidation=strict"),
                json,
                new_cm,
                422,
                "fieldValidation: Unsupported value: \\\"strict\\\": supported values: \\\"\\\", \\\"Ignore\\\", \\\"Strict\\\", \\\"Warn\\\"",
            ),
            case(
                "dry-run create",
                "POST",
                format!("{CMS}?dryRun=All"),
                json,
                new_cm,
                201,
                "\"name\":\"wire-2\"",
            ),
            case(
                "force on a merge patch",
                "PATCH",
                format!("{CMS}/wire?force=false"),
                merge,
                Some(r#"{"data":{"b":"2"}}"#),
                422,
                "PatchOptions.meta.k8s.io \\\"\\\" is invalid: force: Forbidden: may not be specified for non-apply patch",
            ),
            case(
                "apply without a field manager",
                "PATCH",
                format!("{CMS}/wire"),
                apply,
                Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wire\n"),
                422,
                "fieldManager: Required value: is required for apply patch",
            ),
            case(
                "apply as CBOR (not served by 1.33)",
                "PATCH",
                format!("{CMS}/wire?fieldManager=t"),
                &["Content-Type: application/apply-patch+cbor"],
                Some("{}"),
                415,
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml",
            ),
            case(
                "an unknown propagationPolicy",
                "DELETE",
                format!("{CMS}/wire?propagationPolicy=orphan"),
                &[],
                None,
                422,
                "DeleteOptions.meta.k8s.io \\\"\\\" is invalid: propagationPolicy: Unsupported value: \\\"orphan\\\": supported values: \\\"Foreground\\\", \\\"Background\\\", \\\"Orphan\\\", \\\"nil\\\"",
            ),
            case(
                "orphanDependents and propagationPolicy together",
                "DELETE",
                format!("{CMS}/wire"),
                json,
                Some(r#"{"orphanDependents":true,"propagationPolicy":"Orphan"}"#),
                422,
                "orphanDependents and deletionPropagation cannot be both set",
            ),
            case(
                "gracePeriodSeconds=x",
                "DELETE",
                format!("{CMS}/wire?gracePeriodSeconds=x"),
                &[],
                None,
                400,
                "strconv.ParseInt: parsing \\\"x\\\": invalid syntax",
            ),
            case(
                "a dry-run delete",
                "DELETE",
                format!("{CMS}/wire?dryRun=All"),
                &[],
                None,
                200,
                "\"status\":\"Success\"",
            ),
            get(
                "still there after the dry run",
                format!("{CMS}/wire"),
                200,
                "\"a\":\"1\"",
            ),
            // with a body, the query's options are not read at all
            case(
                "a DELETE body wins over the query",
                "DELETE",
                format!("{CMS}/wire?propagationPolicy=bogus&dryRun=bogus"),
                json,
                Some(
                    r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}"#,
                ),
                200,
                "\"status\":\"Success\"",
            ),
            get(
                "gone",
                format!("{CMS}/wire"),
                404,
                "\"reason\":\"NotFound\"",
            ),
        ],
    );
}

#[test]
fn paths_negotiation_gzip_and_pretty_follow_kube_apiserver() {
    let c = Cluster::start();
    seed(&c);
    run(
        &c,
        &[
            get("/version/", "/version/", 200, "\"major\": \"1\""),
            get("/api/", "/api/", 200, "\"kind\":\"APIVersions\""),
            get("/apis/", "/apis/", 200, "\"kind\":\"APIGroupList\""),
            get(
                "a trailing slash on a collection",
                format!("{CMS}/"),
                200,
                "\"kind\":\"ConfigMapList\"",
            ),
            get(
                "an empty segment inside",
                "/api/v1//namespaces",
                404,
                "\"details\":{}",
            ),
            get(
                "paths are case-sensitive",
                "/API/v1/namespaces",
                404,
                "\"reason\":\"NotFound\"",
            ),
            get(
                "/openapi/v2/ is not /openapi/v2",
                "/openapi/v2/",
                404,
                "\"reason\":\"NotFound\"",
            ),
            get(
                "/healthz/ is not /healthz",
                "/healthz/",
                404,
                "\"reason\":\"NotFound\"",
            ),
            Case {
                what: "q-values choose YAML",
                method: "GET",
                path: format!("{CMS}/wire"),
                headers: &["Accept: application/json;q=0.1, application/yaml"],
                body: None,
                code: 200,
                contains: "kind: ConfigMap",
            },
            Case {
                what: "a JSON watch stream",
                method: "GET",
                path: format!("{CMS}?watch=1&timeoutSeconds=1"),
                headers: &["Accept: application/json;stream=watch"],
                body: None,
                code: 200,
                contains: "{\"type\":\"ADDED\"",
            },
            Case {
                what: "a Table in a version kube does not serve falls back",
                method: "GET",
                path: format!("{CMS}/wire"),
                headers: &[
                    "Accept: application/json;as=Table;g=meta.k8s.io;v=v2, application/json",
                ],
                body: None,
                code: 200,
                contains: "\"kind\":\"ConfigMap\"",
            },
            Case {
                what: "nothing acceptable",
                method: "GET",
                path: format!("{CMS}/wire"),
                headers: &["Accept: text/html"],
                body: None,
                code: 406,
                contains: "\"reason\":\"NotAcceptable\"",
            },
        ],
    );

    // gzip only for complete bodies over 128 KiB, when asked
    let big = "x".repeat(200 * 1024);
    let body = format!(r#"{{"metadata":{{"name":"big"}},"data":{{"blob":"{big}"}}}}"#);
    let r = c.curl(
        "POST",
        CMS,
        &["Content-Type: application/json"],
        Some(body.as_bytes()),
    );
    assert_eq!(r.code, 201, "{}", text(&r.body));
    let gz = &["Accept-Encoding: gzip"][..];
    let r = c.curl("GET", CMS, gz, None);
    assert_eq!(r.header("content-encoding"), ["gzip"], "{}", r.headers);
    assert_eq!(r.body[..2], [0x1f, 0x8b]);
    assert!(r.body.len() < 20 * 1024, "{} bytes", r.body.len());
    let r = c.curl("GET", &format!("{CMS}/wire"), gz, None);
    assert!(r.header("content-encoding").is_empty(), "{}", r.headers);
    let r = c.curl("GET", CMS, &[], None);
    assert!(r.header("content-encoding").is_empty(), "{}", r.headers);
    assert!(r.body.len() > 200 * 1024);
    let r = c.curl("GET", &format!("{CMS}?watch=1&timeoutSeconds=1"), gz, None);
    assert!(r.header("content-encoding").is_empty(), "{}", r.headers);

    // pretty: ?pretty=true, or curl's User-Agent when pretty is not given
    let r = c.curl("GET", &format!("{CMS}/wire?pretty=true"), &[], None);
    let pretty = text(&r.body);
    assert!(
        pretty.starts_with("{\n  \"") && pretty.contains("\n  \"kind\": \"ConfigMap\",\n"),
        "{pretty}"
    );
    let curl_ua = &["User-Agent: curl/8.5.0"][..];
    let r = c.curl("GET", &format!("{CMS}/nope"), curl_ua, None);
    assert!(
        text(&r.body).starts_with("{\n  \"kind\": \"Status\",\n"),
        "{}",
        text(&r.body)
    );
    assert!(!text(&r.body).ends_with('\n'));
    let r = c.curl("GET", &format!("{CMS}/nope?pretty=false"), curl_ua, None);
    assert!(
        text(&r.body).starts_with("{\"kind\":\"Status\""),
        "{}",
        text(&r.body)
    );
    let r = c.curl("GET", &format!("{CMS}/nope"), &[], None);
    assert!(text(&r.body).ends_with("}\n"), "{}", text(&r.body));
}

#[test]
fn built_in_kinds_answer_in_protobuf_when_it_is_preferred() {
    use apiserver::protobuf::decode_request;
    use apiserver::protobuf::wire::{Fields, Value as Wire};
    let c = Cluster::start();
    seed(&c);
    let pb = &["Accept: application/vnd.kubernetes.protobuf, application/json"][..];
    let r = c.curl("GET", &format!("{CMS}/wire"), pb, None);
    assert_eq!(r.code, 200);
    assert_eq!(
        r.header("content-type"),
        ["application/vnd.kubernetes.protobuf"]
    );
    let cm = decode_request(&r.body).expect("a protobuf ConfigMap");
    assert_eq!(cm["metadata"]["name"], "wire");
    assert_eq!(cm["data"]["a"], "1");

    let r = c.curl("GET", CMS, pb, None);
    assert_eq!(
        r.header("content-type"),
        ["application/vnd.kubernetes.protobuf"]
    );
    assert!(r.body.starts_with(b"k8s\0"));
    assert!(
        r.body.windows(13).any(|w| w == b"ConfigMapList"),
        "{:?}",
        text(&r.body)
    );

    // errors too are protobuf Statuses
    let r = c.curl("GET", &format!("{CMS}/nope"), pb, None);
    assert_eq!(r.code, 404);
    assert_eq!(
        r.header("content-type"),
        ["application/vnd.kubernetes.protobuf"]
    );
    assert!(r.body.windows(8).any(|w| w == b"NotFound"));

    // a watch: length-prefixed WatchEvents whose objects are enveloped
    let r = c.curl(
        "GET",
        &format!("{CMS}?watch=1&timeoutSeconds=1"),
        &["Accept: application/vnd.kubernetes.protobuf;stream=watch, application/json;stream=watch"],
        None,
    );
    assert_eq!(
        r.header("content-type"),
        ["application/vnd.kubernetes.protobuf;stream=watch"]
    );
    let len = u32::from_be_bytes(r.body[..4].try_into().expect("length")) as usize;
    let event = &r.body[4..4 + len];
    let (mut kind, mut object) = (String::new(), None);
    for field in Fields::new(event) {
        match field.expect("WatchEvent") {
            (1, Wire::Len(t)) => kind = text(t),
            (2, Wire::Len(raw_extension)) => {
                for f in Fields::new(raw_extension) {
                    if let (1, Wire::Len(raw)) = f.expect("RawExtension") {
                        object = Some(decode_request(raw).expect("an enveloped object"));
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(kind, "ADDED");
    assert_eq!(object.expect("an object")["metadata"]["name"], "wire");

    // only protobuf acceptable, for a kind without a protobuf form: 406
    let r = c.curl(
        "GET",
        "/apis/korral.dev/v1alpha1/namespaces/default/gitsources",
        &["Accept: application/vnd.kubernetes.protobuf"],
        None,
    );
    assert_eq!(r.code, 406, "{}", text(&r.body));
}
