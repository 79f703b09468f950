//! The API server: the only component that touches the cluster store.
//!
//! Start reading at [`http`] (routing and the resource endpoints), then
//! [`registry`] (the object lifecycle over the [`store`]) and [`admission`]
//! (what every write goes through).

pub mod admission;
pub mod audit;
pub mod auth;
pub mod bootstrap_tokens;
pub mod cache;
pub mod certificates;
pub mod cluster_info;
pub mod crds;
pub mod discovery;
pub mod errors;
pub mod http;
pub mod ipam;
pub mod kubeconfig;
pub mod metrics;
pub mod metrics_api;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod selectors;
pub mod server;
pub mod serviceaccounts;
pub mod snapshots;
pub mod status;
pub mod store;
pub mod tables;
pub mod target;
pub mod tls;
pub mod watched;
