//! Semantic validation of storage: PersistentVolumes, PersistentVolumeClaims,
//! StorageClasses, CSIDrivers and VolumeAttachments, with Kubernetes' messages.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass, VolumeAttachment};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::field_error::FieldError;
use crate::path::FieldPath;
use crate::quantity::QuantityExt;
use crate::validation::{
    Errs, NameRule, Validate, check_immutable, names, validate_meta, validate_selector,
};

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn validate_access_modes(errs: &mut Errs, modes: Option<&Vec<String>>, p: FieldPath, claim: bool) {
    let modes = modes.map(Vec::as_slice).unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required(
            p,
            if claim {
                "at least 1 access mode is required"
            } else {
                ""
            },
        ));
        return;
    }
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(p.clone(), m, ACCESS_MODES));
        }
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        errs.push(FieldError::forbidden(
            p,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

fn volume_mode(errs: &mut Errs, mode: Option<&str>, p: FieldPath) {
    errs.one_of(p, mode, &["Block", "Filesystem"]);
}

fn storage_class_name(errs: &mut Errs, name: Option<&str>, p: FieldPath) {
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        errs.check(p, n, names::dns1123_subdomain(n));
    }
}

/// The volume plugins set on a PersistentVolume (exactly one is valid).
fn pv_sources(s: &PersistentVolumeSpec) -> Vec<&'static str> {
    [
        ("awsElasticBlockStore", s.aws_elastic_block_store.is_some()),
        ("azureDisk", s.azure_disk.is_some()),
        ("azureFile", s.azure_file.is_some()),
        ("cephfs", s.cephfs.is_some()),
        ("cinder", s.cinder.is_some()),
        ("csi", s.csi.is_some()),
        ("fc", s.fc.is_some()),
        ("flexVolume", s.flex_volume.is_some()),
        ("flocker", s.flocker.is_some()),
        ("gcePersistentDisk", s.gce_persistent_disk.is_some()),
        ("glusterfs", s.glusterfs.is_some()),
        ("hostPath", s.host_path.is_some()),
        ("iscsi", s.iscsi.is_some()),
        ("local", s.local.is_some()),
        ("nfs", s.nfs.is_some()),
        ("photonPersistentDisk", s.photon_persistent_disk.is_some()),
        ("portworxVolume", s.portworx_volume.is_some()),
        ("quobyte", s.quobyte.is_some()),
        ("rbd", s.rbd.is_some()),
        ("scaleIO", s.scale_io.is_some()),
        ("storageos", s.storageos.is_some()),
        ("vsphereVolume", s.vsphere_volume.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, set)| set.then_some(n))
    .collect()
}

fn validate_pv_spec(errs: &mut Errs, s: &PersistentVolumeSpec, sp: &FieldPath) {
    validate_access_modes(errs, s.access_modes.as_ref(), sp.key("accessModes"), false);
    match &s.capacity {
        None => errs.push(FieldError::required(sp.key("capacity"), "")),
        Some(c) if c.is_empty() => errs.push(FieldError::required(sp.key("capacity"), "")),
        Some(c) => {
            if c.len() != 1 || !c.contains_key("storage") {
                errs.push(FieldError::not_supported(
                    sp.key("capacity"),
                    &format!("{:?}", c.keys().collect::<Vec<_>>()),
                    &["storage"],
                ));
            }
            if let Some(q) = c.get("storage")
                && q.nanos() <= 0
            {
                errs.push(FieldError::invalid(
                    sp.key("capacity").key("storage"),
                    q.0.as_str(),
                    "must be greater than zero",
                ));
            }
        }
    }
    errs.one_of(
        sp.key("persistentVolumeReclaimPolicy"),
        s.persistent_volume_reclaim_policy.as_deref(),
        &["Delete", "Recycle", "Retain"],
    );
    match pv_sources(s).as_slice() {
        [] => errs.push(FieldError::required(
            sp.clone(),
            "must specify a volume type",
        )),
        [_] => {}
        [_, extra @ ..] => {
            for e in extra {
                errs.push(FieldError::forbidden(
                    sp.key(*e),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    if s.local.is_some() && s.node_affinity.is_none() {
        errs.push(FieldError::required(
            sp.key("nodeAffinity"),
            "Local volume requires node affinity",
        ));
    }
    if let Some(h) = &s.host_path {
        if h.path.split('/').any(|seg| seg == "..") {
            errs.push(FieldError::invalid(
                sp.key("hostPath").key("path"),
                &h.path,
                "must not contain '..'",
            ));
        }
        if h.path == "/" && s.persistent_volume_reclaim_policy.as_deref() == Some("Recycle") {
            errs.push(FieldError::forbidden(
                sp.key("persistentVolumeReclaimPolicy"),
                "may not be 'recycle' for a hostPath mount of '/'",
            ));
        }
    }
    if let Some(n) = &s.nfs {
        if n.server.is_empty() {
            errs.push(FieldError::required(sp.key("nfs").key("server"), ""));
        }
        if n.path.is_empty() {
            errs.push(FieldError::required(sp.key("nfs").key("path"), ""));
        } else if !n.path.starts_with('/') {
            errs.push(FieldError::invalid(
                sp.key("nfs").key("path"),
                &n.path,
                "must be an absolute path",
            ));
        }
    }
    if let Some(c) = &s.csi {
        if c.driver.is_empty() {
            errs.push(FieldError::required(sp.key("csi").key("driver"), ""));
        }
        if c.volume_handle.is_empty() {
            errs.push(FieldError::required(sp.key("csi").key("volumeHandle"), ""));
        }
    }
    storage_class_name(
        errs,
        s.storage_class_name.as_deref(),
        sp.key("storageClassName"),
    );
    volume_mode(errs, s.volume_mode.as_deref(), sp.key("volumeMode"));
}

impl Validate for PersistentVolume {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        match &self.spec {
            None => errs.push(FieldError::required(FieldPath::fields("spec"), "")),
            Some(s) => validate_pv_spec(&mut errs, s, &FieldPath::fields("spec")),
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        let (Some(new), Some(old)) = (&self.spec, &old.spec) else {
            return errs.0;
        };
        let source = |s: &PersistentVolumeSpec| {
            let mut s = s.clone();
            s.access_modes = None;
            s.capacity = None;
            s.claim_ref = None;
            s.mount_options = None;
            s.node_affinity = None;
            s.persistent_volume_reclaim_policy = None;
            s.storage_class_name = None;
            s.volume_mode = None;
            s.volume_attributes_class_name = None;
            if let Some(c) = s.csi.as_mut() {
                c.controller_expand_secret_ref = None;
            }
            s
        };
        if source(new) != source(old) {
            errs.push(FieldError::forbidden(
                FieldPath::fields("spec.persistentvolumesource"),
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        check_immutable(
            &mut errs,
            FieldPath::fields("volumeMode"),
            &new.volume_mode,
            &old.volume_mode,
        );
        if old.node_affinity.is_some() {
            check_immutable(
                &mut errs,
                FieldPath::fields("nodeAffinity"),
                &new.node_affinity,
                &old.node_affinity,
            );
        }
        errs.0
    }
}

fn storage_request(s: &PersistentVolumeClaimSpec) -> Option<&Quantity> {
    s.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r: &BTreeMap<String, Quantity>| r.get("storage"))
}

fn validate_claim_spec(errs: &mut Errs, s: &PersistentVolumeClaimSpec, sp: &FieldPath) {
    validate_access_modes(errs, s.access_modes.as_ref(), sp.key("accessModes"), true);
    if let Some(sel) = &s.selector {
        validate_selector(errs, sel, &sp.key("selector"));
    }
    match storage_request(s) {
        None => errs.push(FieldError::required(
            sp.key("resources").map_key("storage"),
            "",
        )),
        Some(q) if q.nanos() <= 0 => errs.push(FieldError::invalid(
            sp.key("resources").map_key("storage"),
            q.0.as_str(),
            "must be greater than zero",
        )),
        Some(_) => {}
    }
    storage_class_name(
        errs,
        s.storage_class_name.as_deref(),
        sp.key("storageClassName"),
    );
    volume_mode(errs, s.volume_mode.as_deref(), sp.key("volumeMode"));
    for (field, r) in [
        (
            "dataSource",
            s.data_source
                .as_ref()
                .map(|d| (d.api_group.as_deref(), &d.kind, &d.name)),
        ),
        (
            "dataSourceRef",
            s.data_source_ref
                .as_ref()
                .map(|d| (d.api_group.as_deref(), &d.kind, &d.name)),
        ),
    ] {
        let Some((group, kind, name)) = r else {
            continue;
        };
        let p = sp.key(field);
        if name.is_empty() {
            errs.push(FieldError::required(p.key("name"), ""));
        }
        if kind.is_empty() {
            errs.push(FieldError::required(p.key("kind"), ""));
        }
        match group.filter(|g| !g.is_empty()) {
            None if !kind.is_empty() && kind != "PersistentVolumeClaim" => {
                errs.push(FieldError::invalid(
                    p,
                    kind,
                    "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
                ))
            }
            Some(g) => errs.check(p.key("apiGroup"), g, names::dns1123_subdomain(g)),
            None => {}
        }
    }
}

impl Validate for PersistentVolumeClaim {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        match &self.spec {
            None => errs.push(FieldError::required(FieldPath::fields("spec"), "")),
            Some(s) => validate_claim_spec(&mut errs, s, &FieldPath::fields("spec")),
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        let (Some(new_spec), Some(old_spec)) = (&self.spec, &old.spec) else {
            return errs.0;
        };
        let bound = old.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let mut relaxed = new_spec.clone();
        if old_spec.volume_name.as_deref().is_none_or(str::is_empty) {
            relaxed.volume_name = old_spec.volume_name.clone();
        }
        if old_spec.storage_class_name.is_none() && !bound {
            relaxed.storage_class_name = None;
        }
        if bound {
            relaxed.resources = old_spec.resources.clone();
        }
        relaxed.volume_attributes_class_name = old_spec.volume_attributes_class_name.clone();
        if relaxed != *old_spec {
            errs.push(FieldError::forbidden(
                FieldPath::fields("spec"),
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        if bound
            && let (Some(new_q), Some(old_q)) =
                (storage_request(new_spec), storage_request(old_spec))
            && new_q.nanos() < old_q.nanos()
        {
            let capacity = old
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .map(QuantityExt::nanos)
                .unwrap_or(0);
            if new_q.nanos() <= capacity {
                errs.push(FieldError::forbidden(
                    FieldPath::fields("spec.resources.requests.storage"),
                    "field can not be less than status.capacity",
                ));
            }
        }
        check_immutable(
            &mut errs,
            FieldPath::fields("volumeMode"),
            &new_spec.volume_mode,
            &old_spec.volume_mode,
        );
        errs.0
    }
}

impl Validate for StorageClass {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        if self.provisioner.is_empty() {
            errs.push(FieldError::required(FieldPath::fields("provisioner"), ""));
        } else {
            let lower = self.provisioner.to_ascii_lowercase();
            errs.check(
                FieldPath::fields("provisioner"),
                &self.provisioner,
                names::qualified_name(&lower),
            );
        }
        let params = self.parameters.as_ref();
        let size: usize = params
            .iter()
            .flat_map(|p| p.iter())
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if params.is_some_and(|p| p.len() > 512) {
            errs.push(FieldError::too_long(FieldPath::fields("parameters"), 512));
        }
        if params.is_some_and(|p| p.keys().any(String::is_empty)) {
            errs.push(FieldError::invalid(
                FieldPath::fields("parameters"),
                "",
                "field can not be empty.",
            ));
        }
        if size > 256 * 1024 {
            errs.push(FieldError::too_long(
                FieldPath::fields("parameters"),
                256 * 1024,
            ));
        }
        errs.one_of(
            FieldPath::fields("reclaimPolicy"),
            self.reclaim_policy.as_deref(),
            &["Delete", "Retain"],
        );
        match self.volume_binding_mode.as_deref() {
            None => errs.push(FieldError::required(
                FieldPath::fields("volumeBindingMode"),
                "",
            )),
            Some(m) => errs.one_of(
                FieldPath::fields("volumeBindingMode"),
                Some(m),
                &["Immediate", "WaitForFirstConsumer"],
            ),
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        for (field, changed) in [
            ("parameters", self.parameters != old.parameters),
            ("provisioner", self.provisioner != old.provisioner),
            ("reclaimPolicy", self.reclaim_policy != old.reclaim_policy),
        ] {
            if changed {
                errs.push(FieldError::forbidden(
                    FieldPath::fields(field),
                    format!("updates to {field} are forbidden."),
                ));
            }
        }
        check_immutable(
            &mut errs,
            FieldPath::fields("volumeBindingMode"),
            &self.volume_binding_mode,
            &old.volume_binding_mode,
        );
        errs.0
    }
}

impl Validate for CSIDriver {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let s = &self.spec;
        for (field, v) in [
            ("attachedRequired", s.attach_required),
            ("podInfoOnMount", s.pod_info_on_mount),
            ("storageCapacity", s.storage_capacity),
        ] {
            if v.is_none() {
                errs.push(FieldError::required(sp.key(field), ""));
            }
        }
        errs.one_of(
            sp.key("fsGroupPolicy"),
            s.fs_group_policy.as_deref(),
            &["File", "None", "ReadWriteOnceWithFSType"],
        );
        for m in s.volume_lifecycle_modes.iter().flatten() {
            errs.one_of(
                sp.key("volumeLifecycleModes"),
                Some(m),
                &["Persistent", "Ephemeral"],
            );
        }
        let mut audiences = std::collections::HashSet::new();
        for (i, t) in s.token_requests.iter().flatten().enumerate() {
            let tp = sp.key("tokenRequests").index(i);
            if !audiences.insert(t.audience.clone()) {
                errs.push(FieldError::duplicate(tp.key("audience"), &t.audience));
            }
            if let Some(e) = t.expiration_seconds {
                if e < 600 {
                    errs.push(FieldError::invalid(
                        tp.key("expirationSeconds"),
                        e,
                        "may not specify a duration less than 10 minutes",
                    ));
                } else if e > 1 << 32 {
                    errs.push(FieldError::invalid(
                        tp.key("expirationSeconds"),
                        e,
                        "may not specify a duration larger than 2^32 seconds",
                    ));
                }
            }
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        check_immutable(
            &mut errs,
            FieldPath::fields("spec.attachedRequired"),
            &self.spec.attach_required,
            &old.spec.attach_required,
        );
        check_immutable(
            &mut errs,
            FieldPath::fields("spec.volumeLifecycleModes"),
            &self.spec.volume_lifecycle_modes,
            &old.spec.volume_lifecycle_modes,
        );
        errs.0
    }
}

impl Validate for VolumeAttachment {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        let sp = FieldPath::fields("spec");
        let s = &self.spec;
        if s.attacher.is_empty() {
            errs.push(FieldError::required(sp.key("attacher"), ""));
        } else if s.attacher.len() > 63 {
            errs.push(FieldError::too_long(sp.key("attacher"), 63));
        } else {
            errs.check(
                sp.key("attacher"),
                &s.attacher,
                names::dns1123_subdomain(&s.attacher.to_ascii_lowercase()),
            );
        }
        let src = sp.key("source");
        match (
            &s.source.inline_volume_spec,
            &s.source.persistent_volume_name,
        ) {
            (None, None) => errs.push(FieldError::required(
                src,
                "must specify exactly one of inlineVolumeSpec and persistentVolumeName",
            )),
            (Some(_), Some(_)) => errs.push(FieldError::forbidden(
                src,
                "must specify exactly one of inlineVolumeSpec and persistentVolumeName",
            )),
            (None, Some(name)) if name.is_empty() => errs.push(FieldError::required(
                src.key("persistentVolumeName"),
                "must specify non empty persistentVolumeName",
            )),
            (None, Some(name)) => errs.check(
                src.key("persistentVolumeName"),
                name,
                names::dns1123_subdomain(name),
            ),
            (Some(inline), None) => {
                validate_pv_spec(&mut errs, inline, &src.key("inlineVolumeSpec"))
            }
        }
        errs.check(
            sp.key("nodeName"),
            &s.node_name,
            names::dns1123_subdomain(&s.node_name),
        );
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        check_immutable(&mut errs, FieldPath::fields("spec"), &self.spec, &old.spec);
        errs.0
    }
}
