//! Why a patch could not be applied, with the HTTP status each case maps to.

/// A patch that could not be applied. The HTTP layer turns it into a
/// `Status` with [`PatchError::code`] and [`PatchError::reason`] and the
/// message as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch itself is malformed (not JSON, not a list of operations, an
    /// unknown directive, a missing merge key): 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but cannot be applied to this object (a path
    /// that does not exist, a failed `test`): 422 Invalid, as Kubernetes
    /// answers JSON patch failures.
    #[error("{0}")]
    Unprocessable(String),
    /// The patch type is not accepted for this resource (strategic merge
    /// patch on korral's own kinds, unknown Content-Type): 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many JSON patch operations: 413 RequestEntityTooLarge.
    #[error("{0}")]
    TooLarge(String),
}

impl PatchError {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Unprocessable(_) => 422,
            PatchError::UnsupportedMediaType(_) => 415,
            PatchError::TooLarge(_) => 413,
        }
    }

    /// The `Status.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::Unprocessable(_) => "Invalid",
            PatchError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            PatchError::TooLarge(_) => "RequestEntityTooLarge",
        }
    }
}
