//! The end-to-end tests of the `korral` binary, as one test executable.
//!
//! Every file beside this one is a module of it: one test binary links the
//! workspace once instead of once per file, which keeps a clean build's disk
//! use and link time small. nextest still runs each test in its own process.
//! Run one area with `cargo nextest run --test e2e node_containerd::`.

// Shared harnesses.
#[path = "../apiserver/tests/common/etcd.rs"]
mod etcd;
mod intake_common;
mod net_support;
mod node_support;
mod sim;
mod support;

// One module per area under test.
mod api_security;
mod autoscaling;
mod controller_failover;
mod daemonsets;
mod disruption;
mod endpoints;
mod ingress;
mod intake_crds;
mod intake_drift;
mod intake_folder;
mod intake_git;
mod intake_health;
mod intake_kustomize;
mod intake_tenants;
mod intake_up;
mod ipam;
mod javascript_client;
mod jobs;
mod kubectl_scenario;
mod metrics_api;
mod net_proxy;
mod net_services;
mod node_containerd;
mod node_exec;
mod node_health;
mod node_image_gc;
mod node_join;
mod node_process;
mod node_registry;
mod node_simulated;
mod python_client;
mod scheduling;
mod service_lb;
mod snapshots;
mod statefulsets;
mod storage;
mod third_party_clients;
mod up_containerd;
mod validate_cli;
mod workloads;
