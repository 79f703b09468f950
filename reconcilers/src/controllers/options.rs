//! Tunables of the controllers that Kubernetes exposes as
//! kube-controller-manager / kube-scheduler flags, with Kubernetes' defaults.
//! Tests set the timing ones short.

use std::time::Duration;

/// Options shared by the controller manager's controllers.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// How long a node may go without renewing its Lease (or posting status)
    /// before node-health marks it `Ready=Unknown` and taints it unreachable
    /// (`--node-monitor-grace-period`, default 40 s).
    pub node_monitor_grace_period: Duration,
    /// How often node-health checks the nodes (`--node-monitor-period`, default 5 s).
    pub node_monitor_period: Duration,
    /// How long pods stay on a node tainted `not-ready`/`unreachable` when
    /// they carry no toleration for that taint at all
    /// (`--pod-eviction-timeout`, default 300 s). Pods with a matching
    /// toleration use its `tolerationSeconds` (the API server adds 300 s by
    /// default), and other `NoExecute` taints evict untolerating pods at once.
    pub pod_eviction_timeout: Duration,
    /// The share of nodes the scheduler filters before it stops looking for
    /// more feasible ones (`percentageOfNodesToScore`; 0 = adaptive, as
    /// kube-scheduler: 50% minus 1% per 125 nodes, at least 5%, at least 100 nodes).
    pub percentage_of_nodes_to_score: u32,
    /// First retry delay of a pod that could not be scheduled (default 1 s).
    pub pod_initial_backoff: Duration,
    /// Longest retry delay of a pod that could not be scheduled (default 10 s).
    pub pod_max_backoff: Duration,
    /// The Job controller's delay before replacing a failed pod, doubled for
    /// each consecutive failure (kube-controller-manager's
    /// `DefaultJobPodFailureBackOff`, 10 s).
    pub job_pod_failure_backoff: Duration,
    /// The longest such delay (`MaxJobPodFailureBackOff`, 10 min in 1.33's
    /// code; the documentation's "six minutes" is older).
    pub job_pod_failure_max_backoff: Duration,
    /// How often each HorizontalPodAutoscaler is evaluated
    /// (`--horizontal-pod-autoscaler-sync-period`, default 15 s).
    pub hpa_sync_period: Duration,
    /// The ratio of usage to target within which an autoscaler does not act
    /// (`--horizontal-pod-autoscaler-tolerance`, default 0.1).
    pub hpa_tolerance: f64,
    /// The down-scale stabilisation window of autoscalers that set none
    /// (`--horizontal-pod-autoscaler-downscale-stabilization`, default 5 min).
    pub hpa_downscale_stabilization: Duration,
    /// How long after a pod starts its CPU samples are trusted only once it
    /// is ready for a whole window
    /// (`--horizontal-pod-autoscaler-cpu-initialization-period`, default 5 min).
    pub hpa_cpu_initialization_period: Duration,
    /// How long after start a pod's readiness changes are taken as its
    /// initial readiness (`--horizontal-pod-autoscaler-initial-readiness-delay`, 30 s).
    pub hpa_initial_readiness_delay: Duration,
    /// "Now" for the Job, CronJob and TTL-after-finished controllers: the
    /// system clock, which tests may move forward.
    pub clock: crate::controllers::clock::Clock,
    /// The CA the csrsigning controller signs with
    /// (`--cluster-signing-cert-file`/`--cluster-signing-key-file`; `korral
    /// server` passes its own). `None`: approved requests stay unsigned.
    pub cluster_signing: Option<std::sync::Arc<SigningCa>>,
    /// The longest life of a certificate the csrsigning controller issues
    /// (`--cluster-signing-duration`, default 8760 h); a request's
    /// `expirationSeconds` may only shorten it.
    pub cluster_signing_duration: Duration,
}

/// A CA certificate and its key, PEM.
#[derive(Clone)]
pub struct SigningCa {
    /// The CA certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for SigningCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningCa { .. }")
    }
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            pod_eviction_timeout: Duration::from_secs(300),
            percentage_of_nodes_to_score: 0,
            pod_initial_backoff: Duration::from_secs(1),
            pod_max_backoff: Duration::from_secs(10),
            job_pod_failure_backoff: Duration::from_secs(10),
            job_pod_failure_max_backoff: Duration::from_secs(600),
            hpa_sync_period: Duration::from_secs(15),
            hpa_tolerance: 0.1,
            hpa_downscale_stabilization: Duration::from_secs(300),
            hpa_cpu_initialization_period: Duration::from_secs(300),
            hpa_initial_readiness_delay: Duration::from_secs(30),
            clock: crate::controllers::clock::Clock::system(),
            cluster_signing: None,
            cluster_signing_duration: Duration::from_secs(8760 * 3600),
        }
    }
}
