//! The ConfigMaps, Secrets, Services and ServiceAccount tokens a pod's env
//! and volumes read, fetched by name (all a node identity may do) and
//! remembered for the length of one sync (tokens for their lifetime).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use reconcilers::runtime::Client;

use crate::pods::tokens::Tokens;

/// The data of a ConfigMap or Secret as bytes, or `None` when it does not exist.
pub type Data = Option<BTreeMap<String, Vec<u8>>>;

/// Fetches ConfigMaps and Secrets of one namespace, each at most once.
pub struct Sources<'a> {
    client: &'a Client,
    tokens: &'a Tokens,
    namespace: String,
    config_maps: HashMap<String, Data>,
    secrets: HashMap<String, Data>,
    service_env: Option<Vec<(String, String)>>,
}

impl<'a> Sources<'a> {
    /// A fetcher for `namespace`.
    pub fn new(client: &'a Client, namespace: &str, tokens: &'a Tokens) -> Self {
        Sources {
            client,
            tokens,
            namespace: namespace.to_string(),
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
            service_env: None,
        }
    }

    /// A ConfigMap's data and binaryData.
    pub async fn config_map(&mut self, name: &str) -> Result<&Data, String> {
        if !self.config_maps.contains_key(name) {
            let api = self.client.api::<ConfigMap>(Some(&self.namespace));
            let got = api
                .get_opt(name)
                .await
                .map_err(|e| format!("configmap {:?}: {e}", name))?;
            let data = got.map(|cm| {
                let mut out: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    out.insert(k, v.0);
                }
                out
            });
            self.config_maps.insert(name.to_string(), data);
        }
        Ok(self.config_maps.get(name).unwrap_or(&None))
    }

    /// A Secret's data, decoded.
    pub async fn secret(&mut self, name: &str) -> Result<&Data, String> {
        if !self.secrets.contains_key(name) {
            let api = self.client.api::<Secret>(Some(&self.namespace));
            let got = api
                .get_opt(name)
                .await
                .map_err(|e| format!("secret {:?}: {e}", name))?;
            let data = got.map(|s| {
                let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                for (k, v) in s.data.unwrap_or_default() {
                    out.insert(k, v.0);
                }
                for (k, v) in s.string_data.unwrap_or_default() {
                    out.insert(k, v.into_bytes());
                }
                out
            });
            self.secrets.insert(name.to_string(), data);
        }
        Ok(self.secrets.get(name).unwrap_or(&None))
    }

    /// The API client (for reads beyond ConfigMaps and Secrets).
    pub fn client(&self) -> &Client {
        self.client
    }

    /// The pod's Service variables (`service_env`), read once per sync
    /// however many containers start.
    pub async fn service_env(
        &mut self,
        pod: &k8s_openapi::api::core::v1::Pod,
        api_endpoint: Option<&(String, u16)>,
    ) -> Result<Vec<(String, String)>, String> {
        if let Some(vars) = &self.service_env {
            return Ok(vars.clone());
        }
        let vars = crate::pods::service_env::for_pod(self, pod, api_endpoint).await?;
        self.service_env = Some(vars.clone());
        Ok(vars)
    }

    /// A token of the pod's ServiceAccount for a projected volume.
    pub async fn token(
        &mut self,
        pod: &k8s_openapi::api::core::v1::Pod,
        audience: Option<&str>,
        seconds: i64,
    ) -> Result<String, String> {
        self.tokens.get(self.client, pod, audience, seconds).await
    }
}
