//! The default plugins, one module each (named as kube-scheduler's), and the
//! default profile with kube-scheduler's score weights: TaintToleration 3,
//! NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2,
//! NodeResourcesFit 1, NodeResourcesBalancedAllocation 1, ImageLocality 1.

pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;
pub mod volume_binding;

#[cfg(test)]
pub mod testing;

use super::framework::{Profile, Weighted};

/// The default profile, with `percentage_of_nodes_to_score` (0 = adaptive).
pub fn default_profile(percentage_of_nodes_to_score: u32) -> Profile {
    default_profile_with(percentage_of_nodes_to_score, None)
}

/// The default profile whose VolumeBinding reads claims, volumes and
/// classes from `volumes` (without them it lets every pod through).
pub fn default_profile_with(
    percentage_of_nodes_to_score: u32,
    volumes: Option<volume_binding::VolumeListers>,
) -> Profile {
    let w = |plugin: Box<dyn super::framework::Plugin>, weight: i64| Weighted { plugin, weight };
    Profile::new(
        vec![
            w(Box::new(node_unschedulable::NodeUnschedulable), 0),
            w(Box::new(node_name::NodeName), 0),
            w(Box::new(taint_toleration::TaintToleration), 3),
            w(Box::new(node_affinity::NodeAffinity), 2),
            w(Box::new(node_ports::NodePorts), 0),
            w(Box::new(node_resources::Fit), 1),
            w(
                Box::new(volume_binding::VolumeBinding { listers: volumes }),
                0,
            ),
            w(Box::new(pod_topology_spread::PodTopologySpread), 2),
            w(Box::new(inter_pod_affinity::InterPodAffinity), 2),
            w(Box::new(node_resources::BalancedAllocation), 1),
            w(Box::new(image_locality::ImageLocality), 1),
        ],
        percentage_of_nodes_to_score,
    )
}
