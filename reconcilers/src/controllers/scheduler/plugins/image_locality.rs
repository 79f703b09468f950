//! ImageLocality: prefer nodes that already have the pod's images, weighted
//! by image size and by how widely the image is spread (so a pod does not
//! pile onto the one node that happens to have it).

use crate::controllers::scheduler::cache::NodeInfo;
use crate::controllers::scheduler::framework::{Cycle, MAX_NODE_SCORE, Plugin};

const MB: i64 = 1024 * 1024;
/// Below this sum of image sizes, the score is 0.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, above this sum the score is 100.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// The plugin.
pub struct ImageLocality;

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn pre_score(&self, cx: &mut Cycle<'_>, _nodes: &[&NodeInfo]) -> bool {
        !cx.pod.images.is_empty()
    }

    fn score(&self, cx: &Cycle<'_>, node: &NodeInfo) -> i64 {
        if node.images.is_empty() {
            return 0;
        }
        let total = cx.cache.nodes().len().max(1) as f64;
        let sum: i64 = cx
            .pod
            .images
            .iter()
            .filter_map(|img| {
                let size = node.images.get(img)?;
                let spread = cx.cache.image_spread(img) as f64 / total;
                Some((*size as f64 * spread) as i64)
            })
            .sum();
        let max = MAX_CONTAINER_THRESHOLD * cx.pod.images.len() as i64;
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::scheduler::plugins::testing::{cache, node, pod, scores};
    use serde_json::json;

    #[test]
    fn nodes_with_big_widespread_images_score_higher() {
        let big = 600 * MB;
        let c = cache(
            vec![
                node(
                    "has",
                    json!({}),
                    json!({"status": {"images": [{"names": ["registry.example.com/app:1"], "sizeBytes": big}]}}),
                ),
                node(
                    "also",
                    json!({}),
                    json!({"status": {"images": [{"names": ["registry.example.com/app:1"], "sizeBytes": big}]}}),
                ),
                node("none", json!({}), json!({})),
            ],
            vec![],
        );
        let p = pod(
            "p",
            json!({}),
            json!({"containers": [{"name": "c", "image": "registry.example.com/app:1"}]}),
        );
        // 600 MB × 2/3 spread = 400 MB → (400 - 23) / (1000 - 23) ≈ 38
        assert_eq!(scores(&ImageLocality, &p, &c), Some(vec![38, 38, 0]));
    }
}
