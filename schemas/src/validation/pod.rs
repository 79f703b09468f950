//! Semantic validation of pods and pod specs (also used for workload
//! templates): containers, ports, env, resources, probes, volumes and
//! scheduling constraints.

use std::collections::{BTreeMap, HashSet};

use crate::field_error::FieldError;
use crate::path::FieldPath;
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, NodeSelectorTerm, Pod, PodAffinityTerm, PodSpec, Probe,
    Toleration, TopologySpreadConstraint, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::quantity::QuantityExt;
use crate::validation::{
    Errs, NameRule, Validate, names, validate_labels, validate_meta, validate_selector,
};

impl Validate for Pod {
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Errs::default();
        validate_meta(
            &mut errs,
            &self.metadata,
            NameRule::Subdomain,
            &FieldPath::fields("metadata"),
        );
        match &self.spec {
            Some(spec) => errs
                .0
                .extend(validate_pod_spec(spec, &FieldPath::fields("spec"))),
            None => errs.push(FieldError::required(
                FieldPath::fields("spec"),
                "a pod needs a spec",
            )),
        }
        errs.0
    }

    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        let (Some(old_spec), Some(new_spec)) = (&old.spec, &self.spec) else {
            return Vec::new();
        };
        if only_mutable_changes(old_spec, new_spec) {
            return Vec::new();
        }
        vec![FieldError::forbidden(
            FieldPath::fields("spec"),
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        )]
    }
}

/// Whether a pod spec update changes only what Kubernetes lets change:
/// images, `activeDeadlineSeconds`, added tolerations, removed scheduling
/// gates and the grace period.
fn only_mutable_changes(old: &PodSpec, new: &PodSpec) -> bool {
    let mut relaxed = new.clone();
    for (o, n) in [
        (&old.containers, &mut relaxed.containers),
        (
            old.init_containers.as_ref().unwrap_or(&Vec::new()),
            relaxed.init_containers.get_or_insert_with(Vec::new),
        ),
    ] {
        if o.len() == n.len() {
            for (oc, nc) in o.iter().zip(n.iter_mut()) {
                nc.image = oc.image.clone();
            }
        }
    }
    if relaxed.init_containers.as_ref().is_some_and(Vec::is_empty) && old.init_containers.is_none()
    {
        relaxed.init_containers = None;
    }
    relaxed.active_deadline_seconds = old.active_deadline_seconds;
    relaxed.termination_grace_period_seconds = old.termination_grace_period_seconds;
    relaxed.scheduling_gates = old.scheduling_gates.clone();
    let old_tol = old.tolerations.clone().unwrap_or_default();
    let new_tol = relaxed.tolerations.clone().unwrap_or_default();
    if old_tol.iter().all(|t| new_tol.contains(t)) {
        relaxed.tolerations = old.tolerations.clone();
    }
    &relaxed == old
}

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const FIELD_REFS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Checks a pod spec at `path`.
pub fn validate_pod_spec(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Errs::default();
    let volumes = validate_volumes(
        &mut errs,
        spec.volumes.as_deref().unwrap_or_default(),
        &path.key("volumes"),
    );
    if spec.containers.is_empty() {
        errs.push(FieldError::required(
            path.key("containers"),
            "a pod needs at least one container",
        ));
    }
    let mut names_seen = HashSet::new();
    for (list, field) in [
        (
            spec.init_containers.as_deref().unwrap_or_default(),
            "initContainers",
        ),
        (&spec.containers[..], "containers"),
    ] {
        for (i, c) in list.iter().enumerate() {
            let p = path.key(field).index(i);
            if !c.name.is_empty() && !names_seen.insert(c.name.as_str()) {
                errs.push(FieldError::duplicate(p.key("name"), &c.name));
            }
            validate_container(&mut errs, c, &p, &volumes, field == "initContainers");
        }
    }
    errs.one_of(
        path.key("restartPolicy"),
        spec.restart_policy.as_deref(),
        RESTART_POLICIES,
    );
    errs.one_of(
        path.key("dnsPolicy"),
        spec.dns_policy.as_deref(),
        DNS_POLICIES,
    );
    if spec.dns_policy.as_deref() == Some("None")
        && spec
            .dns_config
            .as_ref()
            .is_none_or(|d| d.nameservers.as_ref().is_none_or(Vec::is_empty))
    {
        errs.push(FieldError::required(
            path.key("dnsConfig").key("nameservers"),
            "must provide at least one DNS nameserver when `dnsPolicy` is None",
        ));
    }
    errs.non_negative(
        path.key("terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
    );
    errs.at_least(
        path.key("activeDeadlineSeconds"),
        spec.active_deadline_seconds,
        1,
    );
    if let Some(sel) = &spec.node_selector {
        validate_labels(&mut errs, sel, &path.key("nodeSelector"));
    }
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        errs.check(path.key("nodeName"), name, names::dns1123_subdomain(name));
    }
    for (field, value) in [
        ("serviceAccountName", &spec.service_account_name),
        ("hostname", &spec.hostname),
        ("subdomain", &spec.subdomain),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            let check = if field == "serviceAccountName" {
                names::dns1123_subdomain(v)
            } else {
                names::dns1123_label(v)
            };
            errs.check(path.key(field), v, check);
        }
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        validate_toleration(&mut errs, t, &path.key("tolerations").index(i));
    }
    if let Some(a) = &spec.affinity {
        validate_affinity(&mut errs, a, &path.key("affinity"));
    }
    for (i, c) in spec
        .topology_spread_constraints
        .iter()
        .flatten()
        .enumerate()
    {
        validate_spread(
            &mut errs,
            c,
            &path.key("topologySpreadConstraints").index(i),
        );
    }
    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, p) in c.ports.iter().flatten().enumerate() {
                if let Some(hp) = p.host_port
                    && hp != 0
                    && hp != p.container_port
                {
                    errs.push(FieldError::invalid(
                        path.key("containers")
                            .index(i)
                            .key("ports")
                            .index(j)
                            .key("hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    errs.0
}

fn validate_volumes<'a>(
    errs: &mut Errs,
    volumes: &'a [Volume],
    path: &FieldPath,
) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        errs.check(p.key("name"), &v.name, names::dns1123_label(&v.name));
        if !seen.insert(v.name.as_str()) {
            errs.push(FieldError::duplicate(p.key("name"), &v.name));
        }
        match crate::object::volume_sources(v).as_slice() {
            [] => errs.push(FieldError::required(
                p.clone(),
                "must specify a volume type (emptyDir, configMap, secret, hostPath, ...)",
            )),
            [_] => {}
            many => errs.push(FieldError::forbidden(
                p.clone(),
                format!(
                    "may not specify more than 1 volume type, found: {}",
                    many.join(", ")
                ),
            )),
        }
        if let Some(cm) = &v.config_map {
            if cm.name.is_empty() {
                errs.push(FieldError::required(
                    p.key("configMap").key("name"),
                    "the ConfigMap's name",
                ));
            }
            validate_mode(
                errs,
                cm.default_mode,
                &p.key("configMap").key("defaultMode"),
            );
            validate_items(errs, cm.items.as_deref(), &p.key("configMap").key("items"));
        }
        if let Some(s) = &v.secret {
            if s.secret_name.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required(
                    p.key("secret").key("secretName"),
                    "the Secret's name",
                ));
            }
            validate_mode(errs, s.default_mode, &p.key("secret").key("defaultMode"));
            validate_items(errs, s.items.as_deref(), &p.key("secret").key("items"));
        }
        if let Some(h) = &v.host_path {
            if h.path.is_empty() {
                errs.push(FieldError::required(
                    p.key("hostPath").key("path"),
                    "the path on the node",
                ));
            }
            errs.one_of(
                p.key("hostPath").key("type"),
                h.type_.as_deref(),
                &[
                    "",
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ],
            );
        }
        if let Some(e) = &v.empty_dir {
            errs.one_of(
                p.key("emptyDir").key("medium"),
                e.medium.as_deref(),
                &["", "Memory", "HugePages"],
            );
        }
    }
    seen
}

fn validate_mode(errs: &mut Errs, mode: Option<i32>, path: &FieldPath) {
    if let Some(m) = mode
        && !(0..=0o777).contains(&m)
    {
        errs.push(FieldError::invalid(
            path.clone(),
            m,
            "must be a number between 0 and 0777 (octal), both inclusive",
        ));
    }
}

fn validate_items(
    errs: &mut Errs,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    path: &FieldPath,
) {
    for (i, item) in items.unwrap_or_default().iter().enumerate() {
        let p = path.index(i);
        if item.key.is_empty() {
            errs.push(FieldError::required(p.key("key"), "the key to project"));
        }
        validate_relative_path(errs, &item.path, &p.key("path"));
        validate_mode(errs, item.mode, &p.key("mode"));
    }
}

fn validate_relative_path(errs: &mut Errs, s: &str, path: &FieldPath) {
    if s.is_empty() {
        errs.push(FieldError::required(path.clone(), "a relative file path"));
    } else if s.starts_with('/') {
        errs.push(FieldError::invalid(
            path.clone(),
            s,
            "must be a relative path",
        ));
    } else if s.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(
            path.clone(),
            s,
            "must not contain '..'",
        ));
    }
}

fn validate_container(
    errs: &mut Errs,
    c: &Container,
    p: &FieldPath,
    volumes: &HashSet<&str>,
    init: bool,
) {
    if c.name.is_empty() {
        errs.push(FieldError::required(p.key("name"), "the container's name"));
    } else {
        errs.check(p.key("name"), &c.name, names::dns1123_label(&c.name));
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        errs.push(FieldError::required(
            p.key("image"),
            "the container's image",
        ));
    } else if let Some(image) = c.image.as_deref()
        && image.trim() != image
    {
        errs.push(FieldError::invalid(
            p.key("image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    errs.one_of(
        p.key("imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        PULL_POLICIES,
    );
    errs.one_of(
        p.key("terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    );
    if init {
        errs.one_of(
            p.key("restartPolicy"),
            c.restart_policy.as_deref(),
            &["Always"],
        );
    } else if c.restart_policy.is_some() {
        errs.push(FieldError::forbidden(
            p.key("restartPolicy"),
            "may only be set for init containers",
        ));
    }
    let mut port_names = HashSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let pp = p.key("ports").index(i);
        if let Some(e) = names::port_number(port.container_port) {
            errs.push(FieldError::invalid(
                pp.key("containerPort"),
                port.container_port,
                e,
            ));
        }
        if let Some(hp) = port.host_port
            && !(0..=65535).contains(&hp)
        {
            errs.push(FieldError::invalid(
                pp.key("hostPort"),
                hp,
                "must be between 0 and 65535, inclusive",
            ));
        }
        errs.one_of(pp.key("protocol"), port.protocol.as_deref(), PROTOCOLS);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            errs.check(pp.key("name"), name, names::iana_svc_name(name));
            if !port_names.insert(name) {
                errs.push(FieldError::duplicate(pp.key("name"), name));
            }
        }
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        validate_env(errs, e, &p.key("env").index(i));
    }
    for (i, e) in c.env_from.iter().flatten().enumerate() {
        let ep = p.key("envFrom").index(i);
        match (e.config_map_ref.is_some(), e.secret_ref.is_some()) {
            (true, true) => errs.push(FieldError::forbidden(
                ep,
                "may not have more than one field specified at a time",
            )),
            (false, false) => errs.push(FieldError::required(
                ep,
                "must specify one of: `configMapRef` or `secretRef`",
            )),
            _ => {}
        }
    }
    if let Some(r) = &c.resources {
        validate_resources(
            errs,
            r.limits.as_ref(),
            r.requests.as_ref(),
            &p.key("resources"),
        );
    }
    let mut mount_paths = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = p.key("volumeMounts").index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(mp.key("name"), "the volume's name"));
        } else if !volumes.contains(m.name.as_str()) {
            errs.push(FieldError::not_found(
                mp.key("name"),
                &m.name,
                "no volume of this name in spec.volumes",
            ));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(
                mp.key("mountPath"),
                "where to mount the volume",
            ));
        } else if !mount_paths.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                mp.key("mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty())
            && (sp.starts_with('/') || sp.split('/').any(|x| x == ".."))
        {
            errs.push(FieldError::invalid(
                mp.key("subPath"),
                sp,
                "must be a relative path without '..'",
            ));
        }
    }
    for (field, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(pr) = probe {
            if init && c.restart_policy.is_none() {
                errs.push(FieldError::forbidden(
                    p.key(field),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            }
            validate_probe(errs, pr, &p.key(field), field != "readinessProbe");
        }
    }
}

fn validate_env(errs: &mut Errs, e: &EnvVar, p: &FieldPath) {
    errs.check(p.key("name"), &e.name, names::env_var_name(&e.name));
    let Some(from) = &e.value_from else { return };
    if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
        errs.push(FieldError::invalid(
            p.key("valueFrom"),
            "",
            "may not be specified when `value` is not empty",
        ));
    }
    let count = [
        from.field_ref.is_some(),
        from.resource_field_ref.is_some(),
        from.config_map_key_ref.is_some(),
        from.secret_key_ref.is_some(),
    ]
    .into_iter()
    .filter(|b| *b)
    .count();
    match count {
        0 => errs.push(FieldError::required(
            p.key("valueFrom"),
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        )),
        1 => {}
        _ => errs.push(FieldError::invalid(p.key("valueFrom"), "", "may not have more than one field specified at a time")),
    }
    if let Some(f) = &from.field_ref {
        let fp = &f.field_path;
        let labelish = ["metadata.labels['", "metadata.annotations['"]
            .iter()
            .any(|pre| fp.starts_with(pre) && fp.ends_with("']"));
        if !FIELD_REFS.contains(&fp.as_str())
            && !labelish
            && fp != "metadata.labels"
            && fp != "metadata.annotations"
        {
            let mut supported = FIELD_REFS.to_vec();
            supported.extend(["metadata.labels", "metadata.annotations"]);
            errs.push(FieldError::not_supported(
                p.key("valueFrom").key("fieldRef").key("fieldPath"),
                fp,
                &supported,
            ));
        }
    }
    if let Some(r) = &from.resource_field_ref {
        errs.one_of(
            p.key("valueFrom").key("resourceFieldRef").key("resource"),
            Some(r.resource.as_str()),
            &[
                "limits.cpu",
                "limits.memory",
                "limits.ephemeral-storage",
                "requests.cpu",
                "requests.memory",
                "requests.ephemeral-storage",
            ],
        );
    }
    let refs = [
        (
            "configMapKeyRef",
            from.config_map_key_ref.as_ref().map(|k| (&k.name, &k.key)),
        ),
        (
            "secretKeyRef",
            from.secret_key_ref.as_ref().map(|k| (&k.name, &k.key)),
        ),
    ];
    for (field, key) in refs {
        if let Some((name, key)) = key {
            let kp = p.key("valueFrom").key(field);
            if name.is_empty() {
                errs.push(FieldError::required(kp.key("name"), "the object's name"));
            }
            errs.check(kp.key("key"), key, names::config_map_key(key));
        }
    }
}

fn standard_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage" | "pods")
        || name.starts_with("hugepages-")
        || name.contains('/')
}

/// Checks requests and limits: known names, no negatives, requests ≤ limits.
pub(crate) fn validate_resources(
    errs: &mut Errs,
    limits: Option<&BTreeMap<String, Quantity>>,
    requests: Option<&BTreeMap<String, Quantity>>,
    p: &FieldPath,
) {
    for (field, map) in [("limits", limits), ("requests", requests)] {
        for (name, q) in map.into_iter().flatten() {
            let rp = p.key(field).key(name.clone());
            if !standard_resource(name) {
                errs.push(FieldError::invalid(
                    rp.clone(),
                    name,
                    "must be a standard resource (cpu, memory, ephemeral-storage, hugepages-<size>) or a fully qualified extended resource name (example.com/gpu)",
                ));
            }
            if q.nanos() < 0 {
                errs.push(FieldError::invalid(
                    rp,
                    q.0.as_str(),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    if let (Some(l), Some(r)) = (limits, requests) {
        for (name, req) in r {
            if let Some(lim) = l.get(name)
                && req.nanos() > lim.nanos()
            {
                errs.push(FieldError::invalid(
                    p.key("requests").key(name.clone()),
                    req.0.as_str(),
                    format!("must be less than or equal to {name} limit of {}", lim.0),
                ));
            }
        }
    }
}

fn validate_port_ref(errs: &mut Errs, port: &IntOrString, p: &FieldPath) {
    match port {
        IntOrString::Int(n) => {
            if let Some(e) = names::port_number(*n) {
                errs.push(FieldError::invalid(p.clone(), n, e));
            }
        }
        IntOrString::String(s) => errs.check(p.clone(), s, names::iana_svc_name(s)),
    }
}

fn validate_probe(errs: &mut Errs, pr: &Probe, p: &FieldPath, success_must_be_one: bool) {
    let handlers = [
        pr.exec.is_some(),
        pr.http_get.is_some(),
        pr.tcp_socket.is_some(),
        pr.grpc.is_some(),
    ]
    .into_iter()
    .filter(|b| *b)
    .count();
    match handlers {
        0 => errs.push(FieldError::required(
            p.clone(),
            "must specify a handler type (exec, httpGet, tcpSocket or grpc)",
        )),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            p.clone(),
            "may not specify more than 1 handler type",
        )),
    }
    if let Some(e) = &pr.exec
        && e.command.as_ref().is_none_or(Vec::is_empty)
    {
        errs.push(FieldError::required(
            p.key("exec").key("command"),
            "the command to run",
        ));
    }
    if let Some(h) = &pr.http_get {
        validate_port_ref(errs, &h.port, &p.key("httpGet").key("port"));
        errs.one_of(
            p.key("httpGet").key("scheme"),
            h.scheme.as_deref(),
            &["HTTP", "HTTPS"],
        );
    }
    if let Some(t) = &pr.tcp_socket {
        validate_port_ref(errs, &t.port, &p.key("tcpSocket").key("port"));
    }
    errs.non_negative(
        p.key("initialDelaySeconds"),
        pr.initial_delay_seconds.map(i64::from),
    );
    errs.at_least(
        p.key("timeoutSeconds"),
        pr.timeout_seconds.map(i64::from),
        1,
    );
    errs.at_least(p.key("periodSeconds"), pr.period_seconds.map(i64::from), 1);
    errs.at_least(
        p.key("successThreshold"),
        pr.success_threshold.map(i64::from),
        1,
    );
    errs.at_least(
        p.key("failureThreshold"),
        pr.failure_threshold.map(i64::from),
        1,
    );
    if success_must_be_one
        && let Some(s) = pr.success_threshold
        && s != 1
    {
        errs.push(FieldError::invalid(
            p.key("successThreshold"),
            s,
            "must be 1",
        ));
    }
}

fn validate_toleration(errs: &mut Errs, t: &Toleration, p: &FieldPath) {
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() {
        errs.check(p.key("key"), key, names::qualified_name(key));
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => {
            if t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(
                    p.key("operator"),
                    "Exists",
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        "" | "Equal" => {
            if key.is_empty() {
                errs.push(FieldError::invalid(p.key("operator"), "Equal", "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
            }
            if let Some(v) = t.value.as_deref() {
                errs.check(p.key("value"), v, names::label_value(v));
            }
        }
        other => errs.push(FieldError::not_supported(
            p.key("operator"),
            other,
            &["Equal", "Exists"],
        )),
    }
    let effect = t.effect.as_deref().unwrap_or("");
    errs.one_of(
        p.key("effect"),
        Some(effect),
        &["", "NoSchedule", "PreferNoSchedule", "NoExecute"],
    );
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        errs.push(FieldError::invalid(
            p.key("effect"),
            effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
}

fn validate_node_term(errs: &mut Errs, term: &NodeSelectorTerm, p: &FieldPath) {
    for (field, reqs) in [
        ("matchExpressions", &term.match_expressions),
        ("matchFields", &term.match_fields),
    ] {
        for (i, r) in reqs.iter().flatten().enumerate() {
            let rp = p.key(field).index(i);
            let values = r.values.as_deref().unwrap_or_default();
            match r.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(rp.key("values"), "must be specified when `operator` is 'In' or 'NotIn'")),
                "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(rp.key("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")),
                "Gt" | "Lt" if values.len() != 1 || values[0].parse::<i64>().is_err() => errs.push(FieldError::required(rp.key("values"), "must be specified single value when `operator` is 'Lt' or 'Gt', and it must be an integer")),
                "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
                other => errs.push(FieldError::not_supported(rp.key("operator"), other, &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"])),
            }
            if field == "matchExpressions" {
                errs.check(rp.key("key"), &r.key, names::qualified_name(&r.key));
            } else if r.key != "metadata.name" {
                errs.push(FieldError::not_supported(
                    rp.key("key"),
                    &r.key,
                    &["metadata.name"],
                ));
            }
        }
    }
}

fn validate_weight(errs: &mut Errs, w: i32, p: &FieldPath) {
    if !(1..=100).contains(&w) {
        errs.push(FieldError::invalid(
            p.clone(),
            w,
            "must be in the range 1-100",
        ));
    }
}

fn validate_pod_affinity_term(errs: &mut Errs, t: &PodAffinityTerm, p: &FieldPath) {
    if t.topology_key.is_empty() {
        errs.push(FieldError::required(
            p.key("topologyKey"),
            "can not be empty",
        ));
    } else {
        errs.check(
            p.key("topologyKey"),
            &t.topology_key,
            names::qualified_name(&t.topology_key),
        );
    }
    if let Some(sel) = &t.label_selector {
        validate_selector(errs, sel, &p.key("labelSelector"));
    }
    if let Some(sel) = &t.namespace_selector {
        validate_selector(errs, sel, &p.key("namespaceSelector"));
    }
}

fn validate_affinity(errs: &mut Errs, a: &Affinity, p: &FieldPath) {
    if let Some(na) = &a.node_affinity {
        let np = p.key("nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            let rp = np.key("requiredDuringSchedulingIgnoredDuringExecution");
            if req.node_selector_terms.is_empty() {
                errs.push(FieldError::required(
                    rp.key("nodeSelectorTerms"),
                    "must have at least one node selector term",
                ));
            }
            for (i, t) in req.node_selector_terms.iter().enumerate() {
                validate_node_term(errs, t, &rp.key("nodeSelectorTerms").index(i));
            }
        }
        for (i, t) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let tp = np
                .key("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            validate_weight(errs, t.weight, &tp.key("weight"));
            validate_node_term(errs, &t.preference, &tp.key("preference"));
        }
    }
    let terms = [
        (
            "podAffinity",
            a.pod_affinity.as_ref().map(|pa| {
                (
                    &pa.required_during_scheduling_ignored_during_execution,
                    &pa.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
        (
            "podAntiAffinity",
            a.pod_anti_affinity.as_ref().map(|pa| {
                (
                    &pa.required_during_scheduling_ignored_during_execution,
                    &pa.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
    ];
    for (field, pa) in terms {
        let Some((required, preferred)) = pa else {
            continue;
        };
        let pp = p.key(field);
        for (i, t) in required.iter().flatten().enumerate() {
            validate_pod_affinity_term(
                errs,
                t,
                &pp.key("requiredDuringSchedulingIgnoredDuringExecution")
                    .index(i),
            );
        }
        for (i, t) in preferred.iter().flatten().enumerate() {
            let tp = pp
                .key("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            validate_weight(errs, t.weight, &tp.key("weight"));
            validate_pod_affinity_term(errs, &t.pod_affinity_term, &tp.key("podAffinityTerm"));
        }
    }
}

fn validate_spread(errs: &mut Errs, c: &TopologySpreadConstraint, p: &FieldPath) {
    if c.max_skew <= 0 {
        errs.push(FieldError::invalid(
            p.key("maxSkew"),
            c.max_skew,
            "must be greater than zero",
        ));
    }
    if c.topology_key.is_empty() {
        errs.push(FieldError::required(
            p.key("topologyKey"),
            "can not be empty",
        ));
    }
    errs.one_of(
        p.key("whenUnsatisfiable"),
        Some(c.when_unsatisfiable.as_str()),
        &["DoNotSchedule", "ScheduleAnyway"],
    );
    if let Some(m) = c.min_domains {
        if m <= 0 {
            errs.push(FieldError::invalid(
                p.key("minDomains"),
                m,
                "must be greater than zero",
            ));
        } else if c.when_unsatisfiable != "DoNotSchedule" {
            errs.push(FieldError::invalid(
                p.key("minDomains"),
                m,
                "can only use minDomains if whenUnsatisfiable=DoNotSchedule",
            ));
        }
    }
    if let Some(sel) = &c.label_selector {
        validate_selector(errs, sel, &p.key("labelSelector"));
    }
}
