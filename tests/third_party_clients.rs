//! Third-party Python clients against a real `korral server`, each through
//! its own API (scripts in `tests/python/clients/`): kubernetes_asyncio, kr8s
//! and lightkube — version and discovery, create/get/list with selectors
//! and pages, watches from a resourceVersion, resumed, with bookmarks,
//! merge/JSON/strategic patches, server-side apply, the scale subresource,
//! NotFound/AlreadyExists, deletion — and, at the end of each script, the
//! answers korral once gave unlike kube-apiserver 1.33. Each scenario runs
//! under every interpreter in `KORRAL_PYTHONS` (CI: pinned and newest
//! client versions).

use crate::support;

use support::Server;
use support::python::{pythons, scenario};

/// The checks every client's script prints.
const COMMON: &[&str] = &[
    "create: ok",
    "get: ok",
    "list with label selector: ok",
    "list with limit and continue: ok",
    "watch from list resourceVersion: ok",
    "watch resumed from last resourceVersion: ok",
    "merge patch: ok",
    "json patch: ok",
    "scale subresource: ok",
    "get missing is NotFound: ok",
    "create existing is AlreadyExists: ok",
    "delete: ok",
    "delete namespace: ok",
];

fn with_common(extra: &[&'static str]) -> Vec<&'static str> {
    COMMON.iter().chain(extra).copied().collect()
}

#[test]
fn kubernetes_asyncio_works_as_against_kube_apiserver() {
    let expected = with_common(&[
        "version: ok",
        "discovery: ok",
        "watch bookmarks: ok",
        "strategic merge patch: ok",
        "server-side apply: ok",
        "list remainingItemCount: ok",
        "patch options validated: ok",
        "watchlist options validated: ok",
        "watchlist refused with the gate off: ok",
    ]);
    for python in pythons() {
        let server = Server::start();
        scenario(
            &python,
            &server,
            "clients/kubernetes_asyncio_scenario.py",
            &[],
            &expected,
        );
    }
}

#[test]
fn kubernetes_asyncio_watch_list_with_the_gate_on() {
    for python in pythons() {
        let server = Server::start_with(&["--watch-list"]);
        scenario(
            &python,
            &server,
            "clients/kubernetes_asyncio_scenario.py",
            &[std::ffi::OsStr::new("--watch-list")],
            &[
                "list with limit and continue: ok",
                "watchlist options validated: ok",
                "watch without resourceVersion ends initial events with a bookmark: ok",
                "watchlist initial events (sendInitialEvents): ok",
                "delete namespace: ok",
            ],
        );
    }
}

#[test]
fn kr8s_works_as_against_kube_apiserver() {
    let expected = with_common(&[
        "version: ok",
        "discovery: ok",
        "object watch: ok",
        "strategic merge patch (raw call): ok",
        "server-side apply (raw call): ok",
        "unknown field selector answer: ok",
        "json patch failure answer: ok",
    ]);
    for python in pythons() {
        let server = Server::start();
        scenario(&python, &server, "clients/kr8s_scenario.py", &[], &expected);
    }
}

#[test]
fn lightkube_works_as_against_kube_apiserver() {
    let expected = with_common(&[
        "strategic merge patch: ok",
        "server-side apply: ok",
        "generic resources (CRD): ok",
        "json patch failure answer: ok",
    ]);
    for python in pythons() {
        let server = Server::start();
        scenario(
            &python,
            &server,
            "clients/lightkube_scenario.py",
            &[],
            &expected,
        );
    }
}
