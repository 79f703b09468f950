//! Why a patch could not be applied, with the HTTP status each case maps to.

use crate::status::{Status, StatusDetails};

/// A patch that could not be applied. The HTTP layer turns it into a
/// `Status` with [`PatchError::code`] and [`PatchError::reason`] and the
/// message as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch itself is malformed (not JSON, not a list of operations, an
    /// unknown directive, a missing merge key): 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but cannot be applied to this object (a
    /// JSON patch path that does not exist, a failed `test`, a strategic
    /// merge of lists of lists): 422 Invalid with kube-apiserver's generic
    /// text (`errors.NewGenericServerResponse`), which leaves this reason
    /// out of the answer; korral logs it.
    #[error("{0}")]
    Unprocessable(String),
    /// A server-side apply configuration that does not fit the schema:
    /// 422 Invalid with this text.
    #[error("{0}")]
    Invalid(String),
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
            PatchError::Unprocessable(_) | PatchError::Invalid(_) => 422,
            PatchError::UnsupportedMediaType(_) => 415,
            PatchError::TooLarge(_) => 413,
        }
    }

    /// The `Status.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::Unprocessable(_) | PatchError::Invalid(_) => "Invalid",
            PatchError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            PatchError::TooLarge(_) => "RequestEntityTooLarge",
        }
    }

    /// The `Status` object to answer with.
    pub fn to_status(&self) -> Status {
        match self {
            PatchError::Unprocessable(_) => Status::failure(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request".into(),
                Some(StatusDetails::default()),
            ),
            _ => Status::failure(self.code(), self.reason(), self.to_string(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_code_reason_and_message() {
        let e = PatchError::Unprocessable("json patch operation 0 (test /a): test failed".into());
        let s = e.to_status();
        assert_eq!(s.code, Some(422));
        assert_eq!(s.reason.as_deref(), Some("Invalid"));
        assert_eq!(s.status.as_deref(), Some("Failure"));
        // kube-apiserver's generic answer, details {} included
        assert_eq!(
            String::from_utf8_lossy(&s.to_bytes()),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server rejected our request due to an error in our request\",\"reason\":\"Invalid\",\"details\":{},\"code\":422}\n"
        );
        // the reason stays with the error for the log
        assert_eq!(
            e.to_string(),
            "json patch operation 0 (test /a): test failed"
        );
        let s = PatchError::Invalid("failed to create typed patch object".into()).to_status();
        assert_eq!(
            s.message.as_deref(),
            Some("failed to create typed patch object")
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
