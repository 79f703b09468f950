//! API errors as Kubernetes returns them: a `Status` object with a reason, an
//! HTTP code, a message kubectl prints verbatim, and `details.causes`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemas::{FieldError, KindInfo};

use crate::status::{Status, StatusCause, StatusDetails};
use crate::store::StoreError;

/// An API error.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes reason (`NotFound`, `Invalid`, ...).
    pub reason: &'static str,
    /// The message kubectl prints.
    pub message: String,
    /// The object concerned and the causes.
    pub details: Option<Box<StatusDetails>>,
}

/// A `Result` with an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// `Deployment.apps` for grouped kinds, `Pod` for core: how Kubernetes names a kind in messages.
pub fn qualified_kind(info: &KindInfo) -> String {
    if info.group.is_empty() {
        info.kind.to_string()
    } else {
        format!("{}.{}", info.kind, info.group)
    }
}

/// `deployments.apps` for grouped resources, `pods` for core.
pub fn qualified_resource(info: &KindInfo) -> String {
    if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

fn details(info: &KindInfo, name: &str) -> StatusDetails {
    StatusDetails {
        name: Some(name.to_string()).filter(|n| !n.is_empty()),
        group: Some(info.group.to_string()).filter(|g| !g.is_empty()),
        kind: Some(info.plural.to_string()),
        ..Default::default()
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// An error with the code and reason another component chose (an
    /// admission webhook's refusal); an empty reason is left out.
    pub fn with_reason(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, reason, message)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden with Kubernetes' wording.
    pub fn forbidden(
        user: &str,
        verb: &str,
        resource: &str,
        group: &str,
        namespace: Option<&str>,
        name: Option<&str>,
        why: &str,
    ) -> Self {
        // the Status names the resource without its subresource, qualified
        // by its group (`deployments.apps`), as apierrors.NewForbidden does
        let base = resource.split('/').next().unwrap_or(resource);
        let qualified = if group.is_empty() {
            base.to_string()
        } else {
            format!("{base}.{group}")
        };
        let subject = match name {
            Some(n) => format!("{qualified} \"{n}\""),
            None => qualified,
        };
        let scope = match namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_string(),
        };
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(": {why}")
        };
        let mut e = Self::new(
            403,
            "Forbidden",
            format!(
                "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\"{scope}{why}"
            ),
        );
        e.details = Some(Box::new(StatusDetails {
            name: name.map(str::to_string),
            group: Some(group.to_string()).filter(|g| !g.is_empty()),
            kind: Some(base.to_string()),
            ..Default::default()
        }));
        e
    }

    /// 403 Forbidden with a complete message.
    pub fn forbidden_message(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 404 NotFound for an object.
    pub fn not_found(info: &KindInfo, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified_resource(info)),
        );
        e.details = Some(Box::new(details(info, name)));
        e
    }

    /// 404 NotFound for a path that serves nothing: empty (but present)
    /// `details`, which is how clients tell it from a missing object.
    pub fn no_route(path: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        );
        e.details = Some(Box::default());
        e
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({what})"),
        )
    }

    /// 405 MethodNotAllowed with this message.
    pub fn method_not_allowed_message(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(info: &KindInfo, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified_resource(info)),
        );
        e.details = Some(Box::new(details(info, name)));
        e
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(info: &KindInfo, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified_resource(info)
            ),
        );
        e.details = Some(Box::new(details(info, name)));
        e
    }

    /// 409 Conflict with a custom explanation (e.g. a failed precondition).
    pub fn conflict_because(info: &KindInfo, name: &str, why: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified_resource(info)
            ),
        );
        e.details = Some(Box::new(details(info, name)));
        e
    }

    /// 410 Gone: a resourceVersion older than the compacted history.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// 422 Invalid with one cause per field error (the message lists each
    /// distinct error once, as kube-apiserver's aggregate does).
    pub fn invalid(info: &KindInfo, name: &str, errors: &[FieldError]) -> Self {
        Self::invalid_of(&info.group, &info.kind, name, errors)
    }

    /// 422 Invalid for the options of a request (`ListOptions.meta.k8s.io ""
    /// is invalid: ...`), as kube-apiserver answers a bad query parameter.
    pub fn invalid_options(kind: &str, errors: &[FieldError]) -> Self {
        Self::invalid_of("meta.k8s.io", kind, "", errors)
    }

    /// 422 Invalid for a kind named by group and kind (one not in the registry,
    /// such as a subresource's `TokenRequest`).
    pub fn invalid_of(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        // a field error without a path is Go's nil *field.Path
        let field = |fe: &FieldError| {
            if fe.path.is_root() {
                "<nil>".to_string()
            } else {
                fe.path.to_string()
            }
        };
        let mut rendered: Vec<String> = Vec::new();
        for e in errors {
            let r = format!("{}: {}", field(e), e.message);
            if !rendered.contains(&r) {
                rendered.push(r);
            }
        }
        let summary = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            if group.is_empty() {
                format!("{kind} \"{name}\" is invalid: {summary}")
            } else {
                format!("{kind}.{group} \"{name}\" is invalid: {summary}")
            },
        );
        e.details = Some(Box::new(StatusDetails {
            name: Some(name.to_string()).filter(|n| !n.is_empty()),
            group: Some(group.to_string()).filter(|g| !g.is_empty()),
            kind: Some(kind.to_string()),
            causes: Some(
                errors
                    .iter()
                    .map(|fe| StatusCause {
                        reason: Some(fe.reason.cause().to_string()),
                        message: Some(fe.message.clone()),
                        field: Some(field(fe)),
                    })
                    .collect(),
            ),
            ..Default::default()
        }));
        e
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 504 Timeout (e.g. a resourceVersion newer than the store's).
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// The `Status` object.
    pub fn status(&self) -> Status {
        Status::failure(
            self.code,
            self.reason,
            self.message.clone(),
            self.details.as_deref().cloned(),
        )
    }

    /// Maps a store error on an object to the API error Kubernetes returns.
    pub fn from_store(info: &KindInfo, name: &str, e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists { .. } => Self::already_exists(info, name),
            StoreError::NotFound { .. } => Self::not_found(info, name),
            StoreError::Conflict { .. } => Self::conflict(info, name),
            other => Self::from(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted {
                requested,
                compacted,
            } => Self::gone(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::FutureRevision { requested, current } => Self::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            StoreError::Unavailable(m) => {
                Self::unavailable(format!("the cluster store is unavailable: {m}"))
            }
            other => Self::internal(other.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.status().to_bytes();
        let mut response = (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        // as kube-apiserver's ErrorNegotiated: throttling says when to come back
        if let Some(secs) = self
            .details
            .as_ref()
            .and_then(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::FieldPath;

    #[test]
    fn messages_match_kubernetes() {
        let deploy = schemas::lookup("apps/v1", "Deployment").expect("kind");
        let pod = schemas::lookup("v1", "Pod").expect("kind");
        assert_eq!(
            ApiError::not_found(deploy, "web").message,
            "deployments.apps \"web\" not found"
        );
        assert_eq!(
            ApiError::already_exists(pod, "p").message,
            "pods \"p\" already exists"
        );
        let e = ApiError::invalid(
            deploy,
            "web",
            &[FieldError::invalid(
                FieldPath::fields("spec.replicas"),
                -1,
                "must be greater than or equal to 0",
            )],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let s = e.status();
        assert_eq!(s.code, Some(422));
        assert_eq!(s.details.and_then(|d| d.causes).map(|c| c.len()), Some(1));
        let f = ApiError::forbidden("viewer", "create", "pods", "", Some("default"), None, "");
        assert_eq!(
            f.message,
            "pods is forbidden: User \"viewer\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        // grouped resources are qualified; a subresource names its resource
        let f = ApiError::forbidden(
            "jane",
            "create",
            "deployments/scale",
            "apps",
            Some("default"),
            Some("web"),
            "",
        );
        assert_eq!(
            f.message,
            "deployments.apps \"web\" is forbidden: User \"jane\" cannot create resource \"deployments/scale\" in API group \"apps\" in the namespace \"default\""
        );
        assert_eq!(
            f.status().details.and_then(|d| d.kind).as_deref(),
            Some("deployments")
        );
    }
}
