//! Authentication and authorisation: bearer tokens from a token file
//! (`token,identity,role` lines, like Kubernetes' static token file) and the
//! roles korral knows — `admin`, `viewer`, `node:NAME`, `controller`, `intake`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::pki::{PkiError, write_private};

/// The identity of a verified client certificate, as kube-apiserver's x509
/// authenticator makes it (CN the user, O the groups): `system:masters` is
/// an admin; `system:nodes` with `CN=system:node:NAME` is node NAME; anyone
/// else is an RBAC subject, authorised by the cluster's RBAC objects.
pub fn identity_from_cert(
    cert: &crate::tls::ClientCert,
    rbac: Arc<crate::rbac::Snapshot>,
) -> Option<Identity> {
    let in_group = |g: &str| cert.organizations.iter().any(|o| o == g);
    let role = if in_group("system:masters") {
        Role::Admin
    } else if in_group("system:nodes") {
        Role::Node(cert.common_name.strip_prefix("system:node:")?.to_string())
    } else {
        if cert.common_name.is_empty() {
            return None;
        }
        let mut groups = cert.organizations.clone();
        groups.push("system:authenticated".into());
        Role::Subject(Subject::in_groups(groups, RbacView(rbac)))
    };
    Some(Identity {
        name: cert.common_name.clone(),
        role,
    })
}

/// The RBAC snapshot a request was authenticated with (compared by identity).
#[derive(Clone)]
pub struct RbacView(pub Arc<crate::rbac::Snapshot>);

impl PartialEq for RbacView {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RbacView {}

impl std::fmt::Debug for RbacView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RbacView")
    }
}

/// A user RBAC authorises: its groups and the snapshot to decide with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The groups, `system:authenticated` included.
    pub groups: Vec<String>,
    /// The RBAC objects of the request's moment.
    pub rbac: RbacView,
    /// The user's uid, when the authenticator (or impersonation) gives one.
    pub uid: Option<String>,
    /// Extra user information (a ServiceAccount token's credential and
    /// pod, `Impersonate-Extra-*`), by key.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl Subject {
    /// A subject in `groups`, without uid or extras.
    pub fn in_groups(groups: Vec<String>, rbac: RbacView) -> Self {
        Subject {
            groups,
            rbac,
            uid: None,
            extra: Default::default(),
        }
    }
}

impl Subject {
    /// The user as the RBAC authoriser sees it.
    pub fn user(&self, name: &str) -> crate::rbac::User {
        crate::rbac::User {
            name: name.to_string(),
            groups: self.groups.clone(),
        }
    }
}

/// The group of korral's controllers (token-file role `controller`).
pub const CONTROLLERS_GROUP: &str = "system:korral:controllers";
/// The group of korral's GitOps intake (role `intake`).
pub const INTAKE_GROUP: &str = "system:korral:intake";
/// The group of read-only users (role `viewer`).
pub const VIEWERS_GROUP: &str = "korral:viewers";

/// Turns an authenticated identity into the one requests are authorised
/// as: korral's token-file roles and the `system:masters` certificate
/// become RBAC subjects in their groups (the default bindings grant those
/// groups what the roles stand for); nodes keep the node authoriser.
pub fn for_requests(id: Identity, rbac: Arc<crate::rbac::Snapshot>) -> Identity {
    match id.role.groups() {
        Some(groups) => Identity {
            name: id.name,
            role: Role::Subject(Subject::in_groups(groups, RbacView(rbac))),
        },
        None => id,
    }
}

/// What an identity may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// Read everything but Secrets.
    Viewer,
    /// A node daemon: its own Node and Lease, its pods, what they use.
    Node(String),
    /// The reconcilers: everything.
    Controller,
    /// GitOps intake: everything.
    Intake,
    /// Whatever the cluster's RBAC objects grant.
    Subject(Subject),
}

impl Role {
    /// The RBAC groups a token-file role stands for (`None` for nodes and
    /// identities that are RBAC subjects already).
    pub fn groups(&self) -> Option<Vec<String>> {
        let group = match self {
            Role::Admin => "system:masters",
            Role::Viewer => VIEWERS_GROUP,
            Role::Controller => CONTROLLERS_GROUP,
            Role::Intake => INTAKE_GROUP,
            Role::Node(_) | Role::Subject(_) => return None,
        };
        Some(vec![group.to_string(), "system:authenticated".to_string()])
    }

    /// Parses `admin`, `viewer`, `node:NAME`, `controller`, `intake`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            "controller" => Some(Role::Controller),
            "intake" => Some(Role::Intake),
            _ => s
                .strip_prefix("node:")
                .filter(|n| !n.is_empty())
                .map(|n| Role::Node(n.to_string())),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Admin => f.write_str("admin"),
            Role::Viewer => f.write_str("viewer"),
            Role::Node(n) => write!(f, "node:{n}"),
            Role::Controller => f.write_str("controller"),
            Role::Intake => f.write_str("intake"),
            Role::Subject(_) => f.write_str("rbac"),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user name (as shown in 403 messages and managedFields defaults).
    pub name: String,
    /// The role.
    pub role: Role,
}

/// The request being authorised.
#[derive(Clone, Debug, Default)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'a str,
    /// API group.
    pub group: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// Subresource, if any.
    pub subresource: Option<&'a str>,
    /// Namespace, if any.
    pub namespace: Option<&'a str>,
    /// Object name, if any.
    pub name: Option<&'a str>,
}

impl Attributes<'_> {
    /// The same request as the RBAC authoriser reads it.
    pub fn rbac_request(&self) -> crate::rbac::Request<'_> {
        crate::rbac::Request {
            verb: self.verb,
            group: self.group,
            resource: self.resource,
            subresource: self.subresource,
            name: self.name,
            namespace: self.namespace,
            path: None,
        }
    }
}

/// A check the request handler must make with the objects involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The pod (old and new) must be bound to this node.
    PodOnNode(String),
    /// The list/watch must select `spec.nodeName=<node>`.
    SelectsNode(String),
    /// The ConfigMap/Secret must be used by a pod bound to this node (and a
    /// list/watch must select it by `metadata.name`).
    UsedByPodOn(String),
    /// The PersistentVolume must be a local-path volume of this node (its
    /// node daemon deletes it once Released with reclaim `Delete`).
    VolumeOnNode(String),
    /// A token of this ServiceAccount must be bound to a pod on this node
    /// that runs as the ServiceAccount (the Node authoriser and
    /// NodeRestriction for `serviceaccounts/token`).
    TokenForPodOn(String),
}

/// The authoriser's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Allowed if the condition holds.
    AllowIf(Condition),
    /// Forbidden, with a reason for the message (may be empty).
    Deny(String),
}

const READ: &[&str] = &["get", "list", "watch"];

/// Decides whether `id` may make the request.
pub fn authorize(id: &Identity, a: &Attributes<'_>) -> Decision {
    // anyone may ask what they may do (not what others may)
    if a.group == "authorization.k8s.io"
        && a.verb == "create"
        && matches!(
            a.resource,
            "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
        )
    {
        return Decision::Allow;
    }
    match &id.role {
        Role::Admin | Role::Controller | Role::Intake => Decision::Allow,
        Role::Viewer => {
            if a.resource == "secrets" {
                Decision::Deny("viewers may not read Secrets".into())
            } else if READ.contains(&a.verb)
                && !matches!(a.subresource, Some("exec" | "portforward" | "attach"))
            {
                Decision::Allow
            } else {
                Decision::Deny(String::new())
            }
        }
        Role::Node(node) => authorize_node(node, a),
        Role::Subject(subject) => {
            match subject
                .rbac
                .0
                .authorize(&subject.user(&id.name), &a.rbac_request())
            {
                crate::rbac::Verdict::Allow(_) => Decision::Allow,
                crate::rbac::Verdict::Deny => Decision::Deny(String::new()),
            }
        }
    }
}

fn authorize_node(node: &str, a: &Attributes<'_>) -> Decision {
    let own = a.name == Some(node);
    let deny = || Decision::Deny(format!("node {node:?} may not do this"));
    match (a.group, a.resource, a.subresource) {
        ("", "nodes", _) if READ.contains(&a.verb) => Decision::Allow,
        ("", "nodes", None | Some("status"))
            if ["create", "update", "patch"].contains(&a.verb) && (own || a.verb == "create") =>
        {
            Decision::Allow
        }
        ("coordination.k8s.io", "leases", None)
            if a.namespace == Some("kube-node-lease")
                && (own || a.verb == "create" || a.verb == "list" || a.verb == "watch") =>
        {
            Decision::Allow
        }
        ("", "pods", None) if a.verb == "get" || a.verb == "delete" => {
            Decision::AllowIf(Condition::PodOnNode(node.into()))
        }
        ("", "pods", None) if a.verb == "list" || a.verb == "watch" => {
            Decision::AllowIf(Condition::SelectsNode(node.into()))
        }
        ("", "pods", Some("status")) if ["get", "update", "patch"].contains(&a.verb) => {
            Decision::AllowIf(Condition::PodOnNode(node.into()))
        }
        ("", "configmaps" | "secrets", None) if READ.contains(&a.verb) => {
            Decision::AllowIf(Condition::UsedByPodOn(node.into()))
        }
        ("", "persistentvolumeclaims", None) if a.verb == "get" => {
            Decision::AllowIf(Condition::UsedByPodOn(node.into()))
        }
        ("", "persistentvolumes", None) if READ.contains(&a.verb) => Decision::Allow,
        ("", "persistentvolumes", None) if a.verb == "delete" => {
            Decision::AllowIf(Condition::VolumeOnNode(node.into()))
        }
        ("", "serviceaccounts", Some("token")) if a.verb == "create" => {
            Decision::AllowIf(Condition::TokenForPodOn(node.into()))
        }
        ("", "services" | "endpoints" | "namespaces", None) if READ.contains(&a.verb) => {
            Decision::Allow
        }
        // the node's built-in Ingress controller: routes from Ingresses, its address in their status
        ("networking.k8s.io", "ingresses" | "ingressclasses", None) if READ.contains(&a.verb) => {
            Decision::Allow
        }
        ("networking.k8s.io", "ingresses", Some("status"))
            if ["get", "update", "patch"].contains(&a.verb) =>
        {
            Decision::Allow
        }
        // its client certificate's renewal (kube's system:node role): ask, then read the answer
        ("certificates.k8s.io", "certificatesigningrequests", None)
            if ["create", "get", "list", "watch"].contains(&a.verb) =>
        {
            Decision::Allow
        }
        ("", "events", None) if ["create", "update", "patch", "get", "list"].contains(&a.verb) => {
            Decision::Allow
        }
        _ => deny(),
    }
}

/// The token file: `token,identity,role` per line; `#` comments.
pub struct TokenFile {
    path: PathBuf,
    cache: RwLock<(Option<FileStamp>, HashMap<String, Identity>)>,
}

/// What identifies a version of the token file (mtime alone is too coarse:
/// the kernel stamps files at clock-tick granularity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

fn parse_tokens(text: &str) -> HashMap<String, Identity> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split(',').map(str::trim).collect();
        match parts.as_slice() {
            [token, name, role] if !token.is_empty() && !name.is_empty() => match Role::parse(role)
            {
                Some(role) => {
                    out.insert(
                        token.to_string(),
                        Identity {
                            name: name.to_string(),
                            role,
                        },
                    );
                }
                None => {
                    tracing::warn!(line = n + 1, role = %role, "token file: unknown role, line ignored")
                }
            },
            _ => tracing::warn!(
                line = n + 1,
                "token file: expected token,identity,role; line ignored"
            ),
        }
    }
    out
}

/// A new random token (256 bits, hex).
pub fn new_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

impl TokenFile {
    /// Opens `dir/tokens.csv`, creating it with `admin`, `controller` and
    /// `intake` identities when missing.
    pub fn load_or_create(dir: &Path) -> Result<TokenFile, PkiError> {
        let path = dir.join("tokens.csv");
        if !path.exists() {
            let text = format!(
                "# token,identity,role — roles: admin, viewer, node:NAME, controller, intake\n{},admin,admin\n{},korral-controller,controller\n{},korral-intake,intake\n",
                new_token(),
                new_token(),
                new_token()
            );
            write_private(&path, &text)?;
            tracing::info!(path = %path.display(), "generated tokens");
        }
        let tf = TokenFile {
            path,
            cache: RwLock::new((None, HashMap::new())),
        };
        tf.reload();
        Ok(tf)
    }

    fn reload(&self) {
        let mtime = stamp(&self.path);
        let stale = self
            .cache
            .read()
            .map(|c| c.0 != mtime || c.0.is_none())
            .unwrap_or(true);
        if !stale {
            return;
        }
        self.read_file(mtime);
    }

    fn read_file(&self, mtime: Option<FileStamp>) {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                if let Ok(mut c) = self.cache.write() {
                    *c = (mtime, parse_tokens(&text));
                }
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot read the token file")
            }
        }
    }

    /// The identity a bearer token belongs to (the file is re-read when it changes).
    pub fn authenticate(&self, token: &str) -> Option<Identity> {
        self.reload();
        self.cache.read().ok()?.1.get(token).cloned()
    }

    /// The token of the first identity with this role, if any.
    pub fn token_for_role(&self, role: &Role) -> Option<String> {
        self.reload();
        let cache = self.cache.read().ok()?;
        let mut found: Vec<(&String, &Identity)> =
            cache.1.iter().filter(|(_, id)| &id.role == role).collect();
        found.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        found.first().map(|(t, _)| t.to_string())
    }

    /// Adds an identity (or returns its existing token).
    pub fn ensure(&self, name: &str, role: &Role) -> Result<String, PkiError> {
        self.reload();
        if let Ok(c) = self.cache.read()
            && let Some((t, _)) =
                c.1.iter()
                    .find(|(_, id)| id.name == name && &id.role == role)
        {
            return Ok(t.clone());
        }
        let token = new_token();
        let mut text = std::fs::read_to_string(&self.path).map_err(|source| PkiError::Io {
            path: self.path.clone(),
            source,
        })?;
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{token},{name},{role}\n"));
        write_private(&self.path, &text)?;
        self.read_file(stamp(&self.path));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(
        verb: &'a str,
        resource: &'a str,
        ns: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource,
            subresource: None,
            namespace: ns,
            name,
        }
    }

    #[test]
    fn roles_decide_as_documented() {
        let viewer = Identity {
            name: "v".into(),
            role: Role::Viewer,
        };
        assert_eq!(
            authorize(&viewer, &attrs("list", "pods", None, None)),
            Decision::Allow
        );
        assert!(matches!(
            authorize(&viewer, &attrs("create", "pods", Some("default"), None)),
            Decision::Deny(_)
        ));
        assert!(matches!(
            authorize(
                &viewer,
                &attrs("get", "secrets", Some("default"), Some("s"))
            ),
            Decision::Deny(_)
        ));
        let node = Identity {
            name: "system:node:a".into(),
            role: Role::Node("a".into()),
        };
        assert_eq!(
            authorize(&node, &attrs("update", "nodes", None, Some("a"))),
            Decision::Allow
        );
        assert!(matches!(
            authorize(&node, &attrs("update", "nodes", None, Some("b"))),
            Decision::Deny(_)
        ));
        assert_eq!(
            authorize(
                &node,
                &Attributes {
                    subresource: Some("status"),
                    ..attrs("update", "pods", Some("default"), Some("p"))
                }
            ),
            Decision::AllowIf(Condition::PodOnNode("a".into()))
        );
        assert_eq!(
            authorize(&node, &attrs("watch", "pods", None, None)),
            Decision::AllowIf(Condition::SelectsNode("a".into()))
        );
        assert!(matches!(
            authorize(
                &node,
                &attrs("create", "deployments", Some("default"), None)
            ),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn token_file_is_created_read_and_extended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tf = TokenFile::load_or_create(dir.path()).expect("tokens");
        let admin = tf.token_for_role(&Role::Admin).expect("admin token");
        assert_eq!(tf.authenticate(&admin).map(|i| i.role), Some(Role::Admin));
        assert_eq!(tf.authenticate("nope"), None);
        let t = tf
            .ensure("system:node:a", &Role::Node("a".into()))
            .expect("add");
        assert_eq!(
            tf.ensure("system:node:a", &Role::Node("a".into()))
                .expect("again"),
            t
        );
        let reopened = TokenFile::load_or_create(dir.path()).expect("reopen");
        assert_eq!(
            reopened.authenticate(&t).map(|i| i.name),
            Some("system:node:a".to_string())
        );
    }
}
