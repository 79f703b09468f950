//! Image garbage collection by disk thresholds, as the kubelet's image GC
//! manager (`pkg/kubelet/images/image_gc_manager.go`): every period the
//! images on the node are detected (first seen, last used by a container —
//! running or exited), and when the image filesystem's usage reaches the high
//! threshold, unused images are removed least recently used first (never
//! used before used, then first detected first), skipping those detected
//! less than the minimum age ago, until usage would be at the low threshold.
//! Images present when the daemon starts count as detected long ago, as the
//! kubelet's first detection does. Too little freed is a `FreeDiskSpaceFailed`
//! Warning on the Node; a failure twice in a row an `ImageGCFailed` one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use reconcilers::controllers::recorder::{Recorder, WARNING};

use crate::runtime::{ImageInfo, Runtime};

/// The image GC policy (the kubelet's `--image-gc-*` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Usage (percent of the image filesystem) at or above which images are collected (85).
    pub high_threshold_percent: u8,
    /// Usage the collection frees down to (80).
    pub low_threshold_percent: u8,
    /// An image detected more recently than this is never collected (2 min).
    pub min_age: Duration,
    /// How often the collector runs (the kubelet's fixed `ImageGCPeriod`, 5 min).
    pub period: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
            period: Duration::from_secs(300),
        }
    }
}

impl Policy {
    /// Checks the thresholds as the kubelet's configuration validation does.
    pub fn validate(&self) -> Result<(), String> {
        for (name, flag, v) in [
            (
                "imageGCHighThresholdPercent",
                "--image-gc-high-threshold",
                self.high_threshold_percent,
            ),
            (
                "imageGCLowThresholdPercent",
                "--image-gc-low-threshold",
                self.low_threshold_percent,
            ),
        ] {
            if v > 100 {
                return Err(format!(
                    "invalid configuration: {name} ({flag}) {v} must be between 0 and 100, inclusive"
                ));
            }
        }
        if self.low_threshold_percent >= self.high_threshold_percent {
            return Err(format!(
                "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {}",
                self.low_threshold_percent, self.high_threshold_percent
            ));
        }
        Ok(())
    }

    /// Bytes to free for usage to reach the low threshold, when usage is at or
    /// above the high one (`None`: nothing to do). Capacity 0 is an error.
    pub fn amount_to_free(&self, capacity: u64, available: u64) -> Result<Option<u64>, String> {
        if capacity == 0 {
            return Err("invalid capacity 0 on image filesystem".into());
        }
        let available = available.min(capacity);
        let usage_percent = 100 - available.saturating_mul(100) / capacity;
        if usage_percent < u64::from(self.high_threshold_percent) {
            return Ok(None);
        }
        let target = capacity.saturating_mul(100 - u64::from(self.low_threshold_percent)) / 100;
        Ok(Some(target.saturating_sub(available)))
    }
}

/// What the collector knows of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// When first detected (`None`: before the daemon started — long ago).
    pub first_detected: Option<Instant>,
    /// When last seen used by a container (`None`: never).
    pub last_used: Option<Instant>,
    /// Its size in bytes.
    pub size: u64,
}

/// The images seen so far, by id.
#[derive(Clone, Debug, Default)]
pub struct Records {
    images: HashMap<String, Record>,
}

/// Whether a container uses the image: by id, or by one of its names.
fn used(image: &ImageInfo, in_use: &HashSet<String>) -> bool {
    in_use.contains(&image.id) || image.names.iter().any(|n| in_use.contains(n))
}

impl Records {
    /// Notes the images on the node now: new ones are detected at
    /// `detect_time`, those in use were used `now`; images gone are forgotten.
    /// Returns the ids of the images in use.
    pub fn detect(
        &mut self,
        images: &[ImageInfo],
        in_use: &HashSet<String>,
        detect_time: Option<Instant>,
        now: Instant,
    ) -> HashSet<String> {
        let mut used_ids = HashSet::new();
        for image in images {
            let r = self.images.entry(image.id.clone()).or_insert(Record {
                first_detected: detect_time,
                last_used: None,
                size: image.size,
            });
            r.size = image.size;
            if used(image, in_use) {
                r.last_used = Some(now);
                used_ids.insert(image.id.clone());
            }
        }
        let current: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        self.images.retain(|id, _| current.contains(id.as_str()));
        used_ids
    }

    /// The images not in use, least recently used first (never used first;
    /// ties: first detected first, then by id).
    pub fn eviction_order(&self, in_use: &HashSet<String>) -> Vec<(String, Record)> {
        let mut out: Vec<(String, Record)> = self
            .images
            .iter()
            .filter(|(id, _)| !in_use.contains(*id))
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect();
        out.sort_by(|a, b| {
            (a.1.last_used, a.1.first_detected, &a.0).cmp(&(
                b.1.last_used,
                b.1.first_detected,
                &b.0,
            ))
        });
        out
    }
}

/// Whether an image may go at `free_time`: not used since (or at) then, and
/// detected at least `min_age` before.
pub fn eligible(r: &Record, free_time: Instant, min_age: Duration) -> bool {
    if r.last_used.is_some_and(|t| t >= free_time) {
        return false;
    }
    r.first_detected
        .is_none_or(|t| free_time.saturating_duration_since(t) >= min_age)
}

/// Removes eligible images in `order` until `to_free` bytes are freed:
/// the bytes freed, or the kubelet's error when some removal failed.
pub async fn free_space<F, Fut>(
    order: &[(String, Record)],
    to_free: u64,
    free_time: Instant,
    min_age: Duration,
    mut remove: F,
) -> Result<u64, String>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut freed = 0u64;
    let mut errors = Vec::new();
    for (id, r) in order {
        if !eligible(r, free_time, min_age) {
            tracing::debug!(image_id = %id, "image not eligible for garbage collection (used or detected too recently)");
            continue;
        }
        tracing::info!(image_id = %id, size = r.size, "Removing image to free bytes");
        match remove(id.clone()).await {
            Ok(()) => freed += r.size,
            Err(e) => {
                errors.push(e);
                continue;
            }
        }
        if freed >= to_free {
            break;
        }
    }
    if errors.is_empty() {
        Ok(freed)
    } else {
        Err(format!(
            "wanted to free {to_free} bytes, but freed {freed} bytes space with errors in image deletion: [{}]",
            errors.join(", ")
        ))
    }
}

/// The image garbage collector of one node.
pub struct ImageGc {
    runtime: Arc<dyn Runtime>,
    policy: Policy,
    recorder: Recorder,
    node: ObjectReference,
    records: Records,
    initialized: bool,
}

impl ImageGc {
    /// A collector for the images of `runtime` on node `node_name`.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        policy: Policy,
        recorder: Recorder,
        node_name: &str,
    ) -> Self {
        // the kubelet's nodeRef: the Node by name, its uid the name too
        let node = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node_name.into()),
            uid: Some(node_name.into()),
            ..Default::default()
        };
        ImageGc {
            runtime,
            policy,
            recorder,
            node,
            records: Records::default(),
            initialized: false,
        }
    }

    /// Detects images and what uses them; the ids in use.
    async fn detect(&mut self, now: Instant) -> Result<HashSet<String>, String> {
        let images = self.runtime.images().await.map_err(|e| e.to_string())?;
        let containers = self.runtime.list().await.map_err(|e| e.to_string())?;
        let mut in_use = HashSet::new();
        for c in containers {
            if !c.image_id.is_empty() {
                in_use.insert(c.image_id);
            }
            // the image's name as the runtime stores it, for containers without an id
            in_use.insert(c.image);
        }
        // images there before the daemon started were detected "long ago"
        let detect_time = self.initialized.then_some(now);
        self.initialized = true;
        Ok(self.records.detect(&images, &in_use, detect_time, now))
    }

    /// One collection: frees space when usage reached the high threshold.
    pub async fn collect(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let in_use = self.detect(now).await?;
        let fs = self
            .runtime
            .image_fs()
            .await
            .map_err(|e| format!("failed to get image stats: {e}"))?;
        let to_free = match self
            .policy
            .amount_to_free(fs.capacity_bytes, fs.available_bytes)
        {
            Ok(None) => return Ok(()),
            Ok(Some(n)) => n,
            Err(e) => {
                self.event("InvalidDiskCapacity", &e);
                return Err(e);
            }
        };
        let usage = 100 - fs.available_bytes.min(fs.capacity_bytes) * 100 / fs.capacity_bytes;
        tracing::info!(
            usage,
            high_threshold = self.policy.high_threshold_percent,
            amount_to_free = to_free,
            low_threshold = self.policy.low_threshold_percent,
            "Disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold"
        );
        let order = self.records.eviction_order(&in_use);
        let runtime = self.runtime.clone();
        let freed = free_space(&order, to_free, now, self.policy.min_age, |id| {
            let runtime = runtime.clone();
            async move { runtime.remove_image(&id).await.map_err(|e| e.to_string()) }
        })
        .await?;
        if freed < to_free {
            let e = format!(
                "Failed to garbage collect required amount of images. Attempted to free {to_free} bytes, but only found {freed} bytes eligible to free."
            );
            self.event("FreeDiskSpaceFailed", &e);
            return Err(e);
        }
        Ok(())
    }

    fn event(&self, reason: &str, message: &str) {
        self.recorder
            .record_about(self.node.clone(), WARNING, reason, "", message);
    }

    /// Collects every period until the task is dropped (not at all with a
    /// high threshold of 100); a failure twice in a row is an `ImageGCFailed`
    /// Event, as the kubelet reports it.
    pub async fn run(mut self) {
        if self.policy.high_threshold_percent >= 100 {
            tracing::info!("ImageGCHighThresholdPercent is set 100, Disable image GC");
            return;
        }
        let mut failed_before = false;
        loop {
            match self.collect().await {
                Ok(()) => {
                    if failed_before {
                        tracing::info!("Image garbage collection succeeded");
                    } else {
                        tracing::debug!("Image garbage collection succeeded");
                    }
                    failed_before = false;
                }
                Err(e) => {
                    if failed_before {
                        tracing::error!(error = %e, "Image garbage collection failed multiple times in a row");
                        self.event("ImageGCFailed", &e);
                    } else {
                        tracing::error!(error = %e, "Image garbage collection failed once. Stats initialization may not have completed yet");
                    }
                    failed_before = true;
                }
            }
            tokio::time::sleep(self.policy.period).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, size: u64) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            names: vec![format!("docker.io/library/{id}:1")],
            size,
        }
    }

    #[test]
    fn thresholds_decide_how_much_to_free() {
        let p = Policy::default();
        assert_eq!(p.validate(), Ok(()));
        // 84% used: below the high threshold
        assert_eq!(p.amount_to_free(100, 16), Ok(None));
        // 85% used: down to 80% means 5 bytes of 100
        assert_eq!(p.amount_to_free(100, 15), Ok(Some(5)));
        assert_eq!(p.amount_to_free(1000, 20), Ok(Some(180)));
        assert_eq!(
            p.amount_to_free(1000, 5000),
            Ok(None),
            "available capped at capacity"
        );
        assert!(p.amount_to_free(0, 0).is_err());
        let bad = Policy {
            low_threshold_percent: 90,
            ..Policy::default()
        };
        assert!(bad.validate().unwrap_err().contains("must be less than"));
        let bad = Policy {
            high_threshold_percent: 101,
            ..Policy::default()
        };
        assert!(bad.validate().unwrap_err().contains("between 0 and 100"));
    }

    #[test]
    fn least_recently_used_first_in_use_never_young_skipped() {
        let t0 = Instant::now();
        let min = Duration::from_secs(120);
        let mut r = Records::default();
        let imgs = [image("old", 10), image("used-once", 20), image("busy", 30)];
        // at start: all there "long ago"; used-once and busy run containers
        let start_use: HashSet<String> =
            ["used-once".to_string(), "docker.io/library/busy:1".into()].into();
        let used = r.detect(&imgs, &start_use, None, t0);
        assert_eq!(used, ["used-once".to_string(), "busy".into()].into());
        // later: used-once's container is gone; a new image arrives
        let t1 = t0 + Duration::from_secs(600);
        let mut imgs2 = imgs.to_vec();
        imgs2.push(image("new", 40));
        let now_use: HashSet<String> = ["busy".to_string()].into();
        let used = r.detect(&imgs2, &now_use, Some(t1), t1);
        let order = r.eviction_order(&used);
        let ids: Vec<&str> = order.iter().map(|(id, _)| id.as_str()).collect();
        // never used (old detected long ago, then new), then used at t0; busy is in use
        assert_eq!(ids, ["old", "new", "used-once"]);
        let t2 = t1 + Duration::from_secs(60);
        let eligible_ids: Vec<&str> = order
            .iter()
            .filter(|(_, rec)| eligible(rec, t2, min))
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(
            eligible_ids,
            ["old", "used-once"],
            "new is younger than the minimum age"
        );
        // images gone from the node are forgotten
        r.detect(&imgs[..1], &HashSet::new(), Some(t2), t2);
        assert_eq!(r.eviction_order(&HashSet::new()).len(), 1);
    }

    #[tokio::test]
    async fn frees_until_enough_and_reports_failed_removals() {
        let t = Instant::now();
        let rec = |size| Record {
            first_detected: None,
            last_used: None,
            size,
        };
        let order = vec![
            ("a".to_string(), rec(10)),
            ("b".to_string(), rec(20)),
            ("c".to_string(), rec(30)),
        ];
        let mut removed = Vec::new();
        let freed = free_space(&order, 25, t, Duration::ZERO, |id| {
            removed.push(id);
            async { Ok(()) }
        })
        .await;
        assert_eq!(freed, Ok(30));
        assert_eq!(removed, ["a", "b"], "stops once enough is freed");
        let freed = free_space(&order, 1000, t, Duration::ZERO, |id| async move {
            if id == "b" {
                Err("image b: busy".to_string())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(
            freed,
            Err("wanted to free 1000 bytes, but freed 40 bytes space with errors in image deletion: [image b: busy]".into())
        );
        assert_eq!(
            free_space(&order, 1000, t, Duration::ZERO, |_| async { Ok(()) }).await,
            Ok(60),
            "too little eligible: the caller reports FreeDiskSpaceFailed"
        );
    }
}
