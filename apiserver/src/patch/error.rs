//! Why a patch could not be applied, with the HTTP status each case maps to.

use crate::status::Status;

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

    /// The `Status` object to answer with.
    pub fn to_status(&self) -> Status {
        Status::failure(self.code(), self.reason(), self.to_string(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_code_reason_and_message() {
        let s = PatchError::Unprocessable("json patch operation 0 (test /a): test failed".into())
            .to_status();
        assert_eq!(s.code, Some(422));
        assert_eq!(s.reason.as_deref(), Some("Invalid"));
        assert_eq!(s.status.as_deref(), Some("Failure"));
        assert_eq!(
            s.message.as_deref(),
            Some("json patch operation 0 (test /a): test failed")
        );
        assert_eq!(
            PatchError::BadRequest(String::new()).to_status().code,
            Some(400)
        );
        assert_eq!(
            PatchError::TooLarge(String::new())
                .to_status()
                .reason
                .as_deref(),
            Some("RequestEntityTooLarge")
        );
    }
}
