//! kube-controller-manager's certificate controllers, for kubelet TLS
//! bootstrapping and rotation: `approver.rs` (csrapproving) approves node
//! client certificate requests whose requester RBAC allows, `signer.rs`
//! (csrsigning) signs approved client certificate requests with the cluster
//! CA, `cleaner.rs` (csrcleaner) deletes requests past their time;
//! `request.rs` is what they read from a request.

pub mod approver;
pub mod cleaner;
pub mod request;
pub mod signer;
