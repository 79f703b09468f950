//! Protobuf request bodies: real kubectl captures against kubectl's own JSON
//! for the same commands, hand-built bodies for the other kinds, the message
//! table against kubectl's descriptors, and malformed input that must not panic.
//!
//! Fixtures: `kubectl/NAME.pb` are bodies kubectl 1.32 (1.33 for
//! `deployment_1.33`) sent to `tools/capture.py` (commands in
//! `tools/capture.sh`: ConfigMaps, Secrets, Deployments, Services, Namespaces,
//! access reviews, Jobs, CronJobs, RBAC, ServiceAccounts, quotas,
//! PriorityClasses, PodDisruptionBudgets, Ingresses, autoscaling/v1 HPAs, a
//! CSR approval update, drain's DeleteOptions);
//! `kubectl/NAME.kubectl-1.31.json` are the JSON bodies kubectl 1.31 sent for
//! the same command. `descriptors/*.pb` are the file descriptors compiled into
//! kubectl 1.33, one per package the table covers.

mod builder;
mod protobuf_golden;
mod protobuf_groups;
mod protobuf_hand_built;
mod protobuf_responses;
mod protobuf_robustness;
mod protobuf_table;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The directory of this test's fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protobuf")
}

/// Checks `object` against korral's schema for its kind: the object as sent
/// may lack only what defaulting supplies (a CronJob's concurrencyPolicy), and
/// the defaulted object, which the API server validates, has no problem.
pub fn assert_valid(object: &Value) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let info = schemas::lookup(api_version, kind).expect("a served kind");
    let errors = schemas::validate_object(info, object);
    assert!(
        errors.iter().all(|e| e.reason == schemas::Reason::Required),
        "{kind}: {errors:?}\n{object:#}"
    );
    let mut defaulted = info.apply_defaults(object.clone()).expect("defaults apply");
    if info.namespaced && defaulted["metadata"].get("namespace").is_none() {
        defaulted["metadata"]["namespace"] = "default".into();
    }
    let errors = schemas::validate_object(info, &defaulted);
    assert!(
        errors.is_empty(),
        "{kind} defaulted: {errors:?}\n{defaulted:#}"
    );
}
