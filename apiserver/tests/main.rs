//! The API server's integration tests (stores, kubectl against an in-process
//! server), as one test executable; every file beside this one is a module.
//! `protobuf/` stays its own executable. Run one area with
//! `cargo nextest run -p apiserver --test api rbac_kubectl::`.

// Shared harnesses.
#[path = "common/cluster.rs"]
mod cluster;
mod common;

// One module per area under test.
mod admission_kubectl;
mod audit_kubectl;
mod crd_kubectl;
mod etcd_snapshots;
mod etcd_store;
mod kinds_kubectl;
mod local_crash;
mod local_store;
mod metrics_api_kubectl;
mod parity_kubectl;
mod patch_kubectl;
mod patch_props;
mod protobuf_kubectl;
mod rbac_kubectl;
mod store_conformance;
mod watch_cache;
mod webhooks_kubectl;
mod wire_kubectl;
