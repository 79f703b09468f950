//! The API server: the only component that touches the cluster store.
//!
//! [`store`] holds the revisioned key-value `Store` trait with its embedded
//! (redb) and etcd backends; the REST API, watch, admission, authn/authz, TLS
//! and kubeconfig writing live beside it.

pub mod patch;
pub mod store;
