//! The usage simulated pods report (the simulated runtime runs nothing):
//! read from pod annotations, so a test drives the Metrics API — and the
//! HorizontalPodAutoscaler — by patching them, at any scale.
//!
//! - `sim.korral.dev/cpu: 250m` and `sim.korral.dev/memory: 64Mi`: what each
//!   container of the pod uses;
//! - `sim.korral.dev/cpu.<container>` and `sim.korral.dev/memory.<container>`:
//!   one container's own figure, over the pod-wide one;
//! - neither: [`DEFAULT_CPU_NANO_CORES`] (1m) and [`DEFAULT_MEMORY_BYTES`] (4Mi).
//!
//! A value that is not a quantity reads as the default.

use k8s_openapi::api::core::v1::Pod;
use schemas::quantity::Amount;

/// Each container's CPU (a quantity).
pub const CPU: &str = "sim.korral.dev/cpu";
/// Each container's memory working set (a quantity).
pub const MEMORY: &str = "sim.korral.dev/memory";
/// CPU when no annotation says: 1m.
pub const DEFAULT_CPU_NANO_CORES: u64 = 1_000_000;
/// Memory when no annotation says: 4Mi.
pub const DEFAULT_MEMORY_BYTES: u64 = 4 << 20;

fn annotated(pod: &Pod, key: &str, container: &str) -> Option<Amount> {
    let annotations = pod.metadata.annotations.as_ref()?;
    annotations
        .get(&format!("{key}.{container}"))
        .or_else(|| annotations.get(key))?
        .parse()
        .ok()
}

/// The CPU `container` of `pod` uses, in nanocores.
pub fn cpu_nano_cores(pod: &Pod, container: &str) -> u64 {
    annotated(pod, CPU, container)
        .and_then(|a| u64::try_from(a.nanos()).ok())
        .unwrap_or(DEFAULT_CPU_NANO_CORES)
}

/// The memory working set of `container` of `pod`, in bytes.
pub fn memory_bytes(pod: &Pod, container: &str) -> u64 {
    annotated(pod, MEMORY, container)
        .and_then(|a| u64::try_from(a.value()).ok())
        .unwrap_or(DEFAULT_MEMORY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: &[(&str, &str)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()}
        }))
        .expect("pod")
    }

    #[test]
    fn annotations_give_each_containers_usage() {
        let p = pod(&[
            (CPU, "250m"),
            (MEMORY, "64Mi"),
            ("sim.korral.dev/cpu.side", "1.5"),
        ]);
        assert_eq!(cpu_nano_cores(&p, "app"), 250_000_000);
        assert_eq!(cpu_nano_cores(&p, "side"), 1_500_000_000);
        assert_eq!(memory_bytes(&p, "side"), 64 << 20);
        let plain = pod(&[(CPU, "lots")]);
        assert_eq!(cpu_nano_cores(&plain, "app"), DEFAULT_CPU_NANO_CORES);
        assert_eq!(memory_bytes(&plain, "app"), DEFAULT_MEMORY_BYTES);
    }
}
