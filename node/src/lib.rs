//! The node daemon: registers its Node, heartbeats a Lease, converges the pods
//! bound to it through a `Runtime` (containerd, process, simulated), runs
//! probes, reports status and programs the service proxy (iptables).
