//! Kubelet-style TLS bootstrapping (`korral node --server URL --token T`):
//! `token.rs` reads the join token (the CA's hash and a bootstrap token),
//! `discovery.rs` fetches the CA from `kube-public/cluster-info` and checks
//! its hash, `csr.rs` asks for a node client certificate with the bootstrap
//! token, `files.rs` keeps the resulting kubeconfig in the node's data
//! directory (reused on restart while valid) and `rotation.rs` renews the
//! certificate before it expires.

pub mod csr;
pub mod discovery;
pub mod files;
pub mod rotation;
pub mod token;

use std::path::PathBuf;
use std::time::Duration;

use reconcilers::runtime::Client;
use reconcilers::runtime::kubeconfig::KubeConfig;

pub use files::Credentials;
pub use token::JoinToken;

/// A node joining a cluster.
#[derive(Clone, Debug)]
pub struct Join {
    /// The API server, `https://host:port`.
    pub server: String,
    /// The join token.
    pub token: JoinToken,
    /// The Node's name.
    pub node: String,
    /// The node's data directory (the kubeconfig goes there).
    pub data_dir: PathBuf,
    /// How long to wait for the certificate.
    pub csr_timeout: Duration,
}

impl Join {
    /// The kubeconfig this node runs with.
    pub fn kubeconfig(&self) -> PathBuf {
        files::kubeconfig_path(&self.data_dir)
    }

    /// The credentials to run with: those kept from an earlier start while
    /// their certificate is this node's, unexpired and from the token's
    /// cluster; otherwise new ones, bootstrapped with the token.
    pub async fn credentials(&self) -> Result<Credentials, String> {
        let path = self.kubeconfig();
        match files::read(&path) {
            Ok(Some(mut kept)) => match self.reusable(&kept) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "reusing the node's client certificate");
                    kept.server = self.server.clone();
                    return Ok(kept);
                }
                Err(why) => {
                    tracing::info!(path = %path.display(), reason = %why, "bootstrapping again")
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the kept credentials are unreadable; bootstrapping again")
            }
        }
        let ca_pem =
            discovery::fetch_ca_retrying(&self.server, &self.token.ca_hash, self.csr_timeout)
                .await?;
        let kc = KubeConfig {
            server: self.server.trim_end_matches('/').to_string(),
            ca_pem: Some(ca_pem.clone()),
            insecure: false,
            token: Some(self.token.bootstrap.clone()),
            identity_pem: None,
            namespace: "default".into(),
        };
        let client = Client::new(&kc, "korral-node-bootstrap").map_err(|e| e.to_string())?;
        let issued = csr::request_certificate(
            &client,
            &self.node,
            csr::Naming::Bootstrap,
            self.csr_timeout,
        )
        .await?;
        let credentials = Credentials {
            server: kc.server,
            ca_pem,
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        };
        files::write(&path, &self.node, &credentials)?;
        tracing::info!(csr = %issued.csr_name, path = %path.display(), "joined: wrote the node's kubeconfig");
        Ok(credentials)
    }

    fn reusable(&self, kept: &Credentials) -> Result<(), String> {
        token::verify_ca(&kept.ca_pem, &self.token.ca_hash)?;
        let info = files::cert_info(&kept.cert_pem)?;
        if info.common_name != format!("system:node:{}", self.node) {
            return Err(format!("the certificate is {:?}'s", info.common_name));
        }
        if info.not_after <= chrono::Utc::now().timestamp() {
            return Err("the certificate has expired".into());
        }
        Ok(())
    }
}
