//! Cluster IP address management, in the control plane: Service cluster IPs
//! from the service CIDR, NodePorts from 30000–32767, and a pod CIDR (/24)
//! per Node from the cluster CIDR. Each allocation is a key in the store
//! (`ipallocations/...`) created with compare-and-swap, so concurrent
//! creates never get the same address; released when the owner goes away.

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{Value, json};

use schemas::KindInfo;

use crate::errors::{ApiError, ApiResult};
use crate::objects;
use crate::store::{Store, StoreError};

/// The address ranges the cluster allocates from.
#[derive(Clone, Debug)]
pub struct IpamConfig {
    /// Service cluster IPs, e.g. 10.96.0.0/12.
    pub service_cidr: (Ipv4Addr, u8),
    /// Pod addresses, split into a /24 per node, e.g. 10.244.0.0/16.
    pub cluster_cidr: (Ipv4Addr, u8),
    /// NodePort range.
    pub node_ports: std::ops::RangeInclusive<i32>,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12),
            cluster_cidr: (Ipv4Addr::new(10, 244, 0, 0), 16),
            node_ports: 30000..=32767,
        }
    }
}

impl IpamConfig {
    /// The first service IP (the `kubernetes` Service's).
    pub fn first_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.service_cidr.0) + 1)
    }
}

/// Parses `a.b.c.d/n` (IPv4).
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok().filter(|b| *b <= 30)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
    Some((Ipv4Addr::from(u32::from(ip) & mask), bits))
}

/// The allocator.
#[derive(Clone)]
pub struct Ipam {
    store: Arc<dyn Store>,
    config: IpamConfig,
}

fn size(bits: u8) -> u32 {
    1u32 << (32 - u32::from(bits))
}

impl Ipam {
    /// An allocator over `store`.
    pub fn new(store: Arc<dyn Store>, config: IpamConfig) -> Self {
        Ipam { store, config }
    }

    /// The first service IP (the `kubernetes` Service's).
    pub fn first_service_ip(&self) -> Ipv4Addr {
        self.config.first_service_ip()
    }

    fn owner(obj: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"namespace": objects::namespace(obj), "name": objects::name(obj), "uid": objects::uid(obj)})).unwrap_or_default()
    }

    /// Takes `key` for `obj`; false when someone else holds it.
    async fn take(&self, key: &str, obj: &Value) -> ApiResult<bool> {
        match self.store.create(key, Self::owner(obj)).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn release_key(&self, key: &str) {
        match self.store.delete(key, None).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(key, error = %e, "cannot release an address"),
        }
    }

    /// Picks a free value from `candidates` (a random start, then in order).
    async fn take_any(
        &self,
        prefix: &str,
        count: u32,
        candidate: impl Fn(u32) -> String,
        obj: &Value,
    ) -> ApiResult<Option<String>> {
        use rand::Rng;
        if count == 0 {
            return Ok(None);
        }
        let start = rand::rng().random_range(0..count);
        for i in 0..count {
            let value = candidate((start + i) % count);
            if self.take(&format!("{prefix}{value}"), obj).await? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    async fn allocate_cluster_ip(
        &self,
        svc: &mut Value,
        info: &KindInfo,
        taken: &mut Vec<String>,
    ) -> ApiResult<()> {
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let given = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if ty == "ExternalName" || given == "None" {
            return Ok(());
        }
        let (base, bits) = self.config.service_cidr;
        let ip = if given.is_empty() {
            // skip the network address and the first IP (kept for the `kubernetes` Service)
            let n = size(bits).saturating_sub(3);
            let picked = self
                .take_any(
                    "ipallocations/services/",
                    n,
                    |i| Ipv4Addr::from(u32::from(base) + 2 + i).to_string(),
                    svc,
                )
                .await?;
            let Some(ip) = picked else {
                return Err(ApiError::internal(format!(
                    "no cluster IP left in the service range {base}/{bits}"
                )));
            };
            ip
        } else {
            let parsed: Ipv4Addr = given.parse().map_err(|_| {
                ApiError::invalid(
                    info,
                    objects::name(svc),
                    &[schemas::FieldError::invalid(
                        schemas::FieldPath::fields("spec.clusterIP"),
                        &given,
                        "must be a valid IP address",
                    )],
                )
            })?;
            let offset = u32::from(parsed).wrapping_sub(u32::from(base));
            if offset == 0 || offset >= size(bits) - 1 {
                return Err(ApiError::invalid(
                    info,
                    objects::name(svc),
                    &[schemas::FieldError::invalid(
                        schemas::FieldPath::fields("spec.clusterIP"),
                        &given,
                        format!(
                            "provided IP is not in the valid range. The range of valid IPs is {base}/{bits}"
                        ),
                    )],
                ));
            }
            if !self
                .take(&format!("ipallocations/services/{given}"), svc)
                .await?
            {
                return Err(ApiError::invalid(
                    info,
                    objects::name(svc),
                    &[schemas::FieldError::invalid(
                        schemas::FieldPath::fields("spec.clusterIP"),
                        &given,
                        "provided IP is already allocated",
                    )],
                ));
            }
            given
        };
        taken.push(format!("ipallocations/services/{ip}"));
        svc["spec"]["clusterIP"] = json!(ip);
        svc["spec"]["clusterIPs"] = json!([ip]);
        svc["spec"]["ipFamilies"] = json!(["IPv4"]);
        svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        Ok(())
    }

    async fn allocate_node_ports(
        &self,
        svc: &mut Value,
        info: &KindInfo,
        old: Option<&Value>,
        taken: &mut Vec<String>,
    ) -> ApiResult<()> {
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if !matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
            return Ok(());
        }
        // a LoadBalancer with allocateLoadBalancerNodePorts: false gets only the node ports it names
        let allocate = ty != "LoadBalancer"
            || svc
                .pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false);
        let held: Vec<i64> = old.map(node_ports).unwrap_or_default();
        let range = self.config.node_ports.clone();
        let count = u32::try_from(range.end() - range.start() + 1).unwrap_or(0);
        let n = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..n {
            let given = svc["spec"]["ports"][i]
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|p| *p != 0);
            match given {
                Some(p) if held.contains(&p) => {}
                Some(p) => {
                    if !self
                        .take(&format!("ipallocations/nodeports/{p}"), svc)
                        .await?
                    {
                        return Err(ApiError::invalid(
                            info,
                            objects::name(svc),
                            &[schemas::FieldError::invalid(
                                schemas::FieldPath::fields("spec.ports")
                                    .index(i)
                                    .key("nodePort"),
                                p,
                                "provided port is already allocated",
                            )],
                        ));
                    }
                    taken.push(format!("ipallocations/nodeports/{p}"));
                }
                None if !allocate => {}
                None => {
                    let start = *range.start();
                    let picked = self
                        .take_any(
                            "ipallocations/nodeports/",
                            count,
                            |k| (start + k as i32).to_string(),
                            svc,
                        )
                        .await?;
                    let Some(p) = picked else {
                        return Err(ApiError::internal("no NodePort left in the range"));
                    };
                    taken.push(format!("ipallocations/nodeports/{p}"));
                    svc["spec"]["ports"][i]["nodePort"] = json!(p.parse::<i64>().unwrap_or(0));
                }
            }
        }
        Ok(())
    }

    async fn allocate_pod_cidr(&self, node: &mut Value, taken: &mut Vec<String>) -> ApiResult<()> {
        if node
            .pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty())
        {
            return Ok(());
        }
        let (base, bits) = self.config.cluster_cidr;
        let subnets = if bits <= 24 {
            1u32 << (24 - u32::from(bits))
        } else {
            0
        };
        let picked = self
            .take_any(
                "ipallocations/podcidrs/",
                subnets,
                |i| format!("{}-24", Ipv4Addr::from(u32::from(base) + (i << 8))),
                node,
            )
            .await?;
        let Some(key) = picked else {
            return Err(ApiError::internal(format!(
                "no pod CIDR left in {base}/{bits}"
            )));
        };
        taken.push(format!("ipallocations/podcidrs/{key}"));
        let cidr = key.replace("-24", "/24");
        if !node.get("spec").is_some_and(Value::is_object) {
            node["spec"] = json!({});
        }
        node["spec"]["podCIDR"] = json!(cidr);
        node["spec"]["podCIDRs"] = json!([cidr]);
        Ok(())
    }

    /// Whether creating an object of this kind allocates anything (cluster
    /// IPs, NodePorts, a pod CIDR).
    pub fn allocates(&self, info: &KindInfo) -> bool {
        info.group.is_empty() && matches!(info.kind.as_str(), "Service" | "Node")
    }

    /// Allocates what a new or updated object needs; returns the keys taken
    /// (to release if the write then fails).
    pub async fn allocate(
        &self,
        info: &KindInfo,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<Vec<String>> {
        let mut taken = Vec::new();
        let result = match (info.group.as_str(), info.kind.as_str()) {
            ("", "Service") => {
                let r = if old.is_none() {
                    self.allocate_cluster_ip(obj, info, &mut taken).await
                } else {
                    Ok(())
                };
                match r {
                    Ok(()) => self.allocate_node_ports(obj, info, old, &mut taken).await,
                    Err(e) => Err(e),
                }
            }
            ("", "Node") if old.is_none() => self.allocate_pod_cidr(obj, &mut taken).await,
            _ => Ok(()),
        };
        match result {
            Ok(()) => Ok(taken),
            Err(e) => {
                self.release_keys(&taken).await;
                Err(e)
            }
        }
    }

    /// Releases keys taken by a failed write.
    pub async fn release_keys(&self, keys: &[String]) {
        for k in keys {
            self.release_key(k).await;
        }
    }

    /// Releases what `old` held and `new` (if any) no longer does.
    pub async fn release(&self, info: &KindInfo, old: &Value, new: Option<&Value>) {
        match (info.group.as_str(), info.kind.as_str()) {
            ("", "Service") => {
                let keep = new.map(node_ports).unwrap_or_default();
                for p in node_ports(old).into_iter().filter(|p| !keep.contains(p)) {
                    self.release_key(&format!("ipallocations/nodeports/{p}"))
                        .await;
                }
                if new.is_none()
                    && let Some(ip) = old
                        .pointer("/spec/clusterIP")
                        .and_then(Value::as_str)
                        .filter(|ip| !ip.is_empty() && *ip != "None")
                {
                    self.release_key(&format!("ipallocations/services/{ip}"))
                        .await;
                }
            }
            ("", "Node") if new.is_none() => {
                if let Some(c) = old.pointer("/spec/podCIDR").and_then(Value::as_str) {
                    self.release_key(&format!("ipallocations/podcidrs/{}", c.replace('/', "-")))
                        .await;
                }
            }
            _ => {}
        }
    }
}

fn node_ports(svc: &Value) -> Vec<i64> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .filter(|p| *p != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_normalise() {
        assert_eq!(
            parse_cidr("10.96.0.0/12"),
            Some((Ipv4Addr::new(10, 96, 0, 0), 12))
        );
        assert_eq!(
            parse_cidr("10.244.7.9/16"),
            Some((Ipv4Addr::new(10, 244, 0, 0), 16))
        );
        assert_eq!(parse_cidr("10.0.0.0/31"), None);
        assert_eq!(parse_cidr("nope"), None);
    }
}
