//! A container's image before it starts, as the kubelet's image manager
//! does it: `imagePullPolicy` (Never, IfNotPresent, Always; unset defaulted
//! by tag as the API server does), the pod's `imagePullSecrets` read anew
//! for every pull (so a fixed Secret is used at the next try), Events
//! (Pulling, Pulled with duration and size, Failed, BackOff,
//! ErrImageNeverPull), and a back-off per pod and image after a failed pull
//! (10 s doubling to 5 min, the crash-loop timings): `ErrImagePull` at the
//! failure, `ImagePullBackOff` while waiting, with the registry's error text.
//! Only runtimes that keep images (containerd) pull.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use reconcilers::controllers::recorder::{NORMAL, Recorder, WARNING, reference};

use crate::pods::sources::Sources;
use crate::runtime::Runtime;
use crate::runtime::auth::Keyring;

/// One image's pull back-off within a pod.
#[derive(Clone, Debug)]
struct Entry {
    delay: Duration,
    last_failure: Instant,
    error: String,
}

/// The pull back-offs of one pod, by image.
#[derive(Clone, Debug, Default)]
pub struct PullBackoff {
    entries: HashMap<String, Entry>,
}

impl PullBackoff {
    /// While in back-off: the time left and the last pull's error.
    fn waiting(&self, image: &str, now: Instant) -> Option<(Duration, String)> {
        let e = self.entries.get(image)?;
        let until = e.last_failure + e.delay;
        (now < until).then(|| (until - now, e.error.clone()))
    }

    /// Records a failed pull; returns the back-off before the next one.
    fn failed(&mut self, image: &str, error: String, base: Duration, max: Duration) -> Duration {
        let now = Instant::now();
        let delay = match self.entries.get(image) {
            // kube forgets a back-off left alone for twice the maximum
            Some(e) if now.duration_since(e.last_failure) < max * 2 => (e.delay * 2).min(max),
            _ => base,
        };
        self.entries.insert(
            image.to_string(),
            Entry {
                delay,
                last_failure: now,
                error,
            },
        );
        delay
    }
}

/// Why a container cannot start yet because of its image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    /// The waiting reason (`ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`, `ErrImageInspect`).
    pub reason: String,
    /// The waiting message.
    pub message: String,
    /// When to look again.
    pub retry_in: Duration,
}

/// The pull policy of a container: its own, or the API server's default by tag.
pub fn pull_policy(c: &Container) -> String {
    if let Some(p) = c.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let image = c.image.as_deref().unwrap_or("");
    let name = image.split('@').next().unwrap_or("");
    let tag = name
        .rsplit('/')
        .next()
        .and_then(|last| last.split_once(':'))
        .map(|(_, t)| t);
    if image.contains('@') || tag.is_some_and(|t| t != "latest") {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

/// Go's `time.Duration` text, at millisecond precision (kube's event texts).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms as f64 / 1000.0;
    let mins = ms / 60_000;
    let rest = (ms % 60_000) as f64 / 1000.0;
    let trim = |v: f64| {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if mins == 0 {
        format!("{}s", trim(secs))
    } else {
        format!("{mins}m{}s", trim(rest))
    }
}

/// The pod's pull credentials: each `imagePullSecrets` entry's docker config
/// (`.dockerconfigjson`, else `.dockercfg`); the names of those that could not be read.
pub async fn keyring(pod: &Pod, sources: &mut Sources<'_>) -> (Keyring, Vec<String>) {
    let mut k = Keyring::new();
    let mut missing = Vec::new();
    let names = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    for r in names {
        let name = r.name;
        let data = match sources.secret(&name).await {
            Ok(Some(d)) => d.clone(),
            Ok(None) | Err(_) => {
                missing.push(name);
                continue;
            }
        };
        let body = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"));
        match body.map(|b| k.add_docker_config(b)) {
            Some(Ok(())) => {}
            _ => missing.push(name),
        }
    }
    (k, missing)
}

/// Everything [`ensure`] works with.
pub struct Puller<'a> {
    /// The runtime that keeps the images.
    pub runtime: &'a dyn Runtime,
    /// Where Events go.
    pub recorder: &'a Recorder,
    /// First back-off after a failed pull.
    pub base: Duration,
    /// Longest back-off.
    pub max: Duration,
}

fn event(p: &Puller<'_>, pod: &Pod, c: &Container, type_: &str, reason: &str, message: &str) {
    let mut r = reference(pod);
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|cs| cs.iter().any(|i| i.name == c.name));
    let field = if init { "initContainers" } else { "containers" };
    r.field_path = Some(format!("spec.{field}{{{}}}", c.name));
    p.recorder.record_about(r, type_, reason, "", message);
}

/// Makes sure the container's image is on the node under its pull policy;
/// `Err` says why the container must wait.
pub async fn ensure(
    p: &Puller<'_>,
    pod: &Pod,
    c: &Container,
    backoff: &mut PullBackoff,
    sources: &mut Sources<'_>,
) -> Result<(), NotReady> {
    if !p.runtime.has_images() {
        return Ok(());
    }
    let image = c.image.clone().unwrap_or_default();
    let policy = pull_policy(c);
    let present = match p.runtime.image_id(&image).await {
        Ok(id) => id.is_some(),
        Err(e) => {
            let message = format!("Failed to inspect image {image:?}: {e}");
            event(p, pod, c, WARNING, "InspectFailed", &message);
            return Err(NotReady {
                reason: "ErrImageInspect".into(),
                message,
                retry_in: Duration::from_secs(2),
            });
        }
    };
    if policy != "Always" && present {
        let message = format!("Container image {image:?} already present on machine");
        event(p, pod, c, NORMAL, "Pulled", &message);
        return Ok(());
    }
    if policy == "Never" {
        let message = format!("Container image {image:?} is not present with pull policy of Never");
        event(p, pod, c, WARNING, "ErrImageNeverPull", &message);
        return Err(NotReady {
            reason: "ErrImageNeverPull".into(),
            message,
            retry_in: Duration::from_secs(2),
        });
    }
    if let Some((left, error)) = backoff.waiting(&image, Instant::now()) {
        event(
            p,
            pod,
            c,
            NORMAL,
            "BackOff",
            &format!("Back-off pulling image {image:?}"),
        );
        event(p, pod, c, WARNING, "Failed", "Error: ImagePullBackOff");
        return Err(NotReady {
            reason: "ImagePullBackOff".into(),
            message: format!("Back-off pulling image {image:?}: ErrImagePull: {error}"),
            retry_in: left,
        });
    }
    let (keyring, missing) = keyring(pod, sources).await;
    if !missing.is_empty() {
        event(
            p,
            pod,
            c,
            WARNING,
            "FailedToRetrieveImagePullSecret",
            &format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                missing.join(", ")
            ),
        );
    }
    event(
        p,
        pod,
        c,
        NORMAL,
        "Pulling",
        &format!("Pulling image {image:?}"),
    );
    let start = Instant::now();
    match p.runtime.pull_image(&image, &keyring).await {
        Ok(pulled) => {
            let took = go_duration(start.elapsed());
            event(
                p,
                pod,
                c,
                NORMAL,
                "Pulled",
                &format!(
                    "Successfully pulled image {image:?} in {took} ({took} including waiting). Image size: {} bytes.",
                    pulled.size
                ),
            );
            Ok(())
        }
        Err(e) => {
            let error = e.to_string();
            event(
                p,
                pod,
                c,
                WARNING,
                "Failed",
                &format!("Failed to pull image {image:?}: {error}"),
            );
            event(p, pod, c, WARNING, "Failed", "Error: ErrImagePull");
            let delay = backoff.failed(&image, error.clone(), p.base, p.max);
            Err(NotReady {
                reason: "ErrImagePull".into(),
                message: error,
                // look again soon, to show ImagePullBackOff while waiting
                retry_in: delay.min(Duration::from_secs(1)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn policies_default_by_tag() {
        for (image, want) in [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("127.0.0.1:5000/busybox", "Always"),
            ("127.0.0.1:5000/busybox:1.36", "IfNotPresent"),
            ("busybox@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(pull_policy(&container(image, None)), want, "{image}");
        }
        assert_eq!(pull_policy(&container("busybox", Some("Never"))), "Never");
    }

    #[test]
    fn back_off_doubles_to_the_cap() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(300));
        let mut b = PullBackoff::default();
        let seen: Vec<u64> = (0..7)
            .map(|_| b.failed("i", "e".into(), base, max).as_secs())
            .collect();
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300]);
        let (left, err) = b.waiting("i", Instant::now()).expect("in back-off");
        assert!(left <= max && left > Duration::from_secs(290));
        assert_eq!(err, "e");
        assert!(b.waiting("other", Instant::now()).is_none());
    }

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_millis(523)), "523ms");
        assert_eq!(go_duration(Duration::from_millis(15_981)), "15.981s");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_millis(62_500)), "1m2.5s");
    }
}
