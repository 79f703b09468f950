//! `FieldError`: one problem with one field of an object, in the shape of
//! Kubernetes' `field.Error` (the causes of a 422 Invalid response).

use std::fmt;

use crate::path::FieldPath;

/// Why a field is wrong; the names are Kubernetes' `StatusCause` reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A value is missing.
    Required,
    /// A value is malformed or out of range.
    Invalid,
    /// A value is not one of the allowed ones.
    NotSupported,
    /// A value repeats one that must be unique.
    Duplicate,
    /// A field is set where it must not be.
    Forbidden,
    /// A value is too long.
    TooLong,
    /// A value has too many items.
    TooMany,
    /// A field the kind does not have.
    UnknownField,
    /// A value of the wrong JSON type.
    TypeInvalid,
    /// A reference to something that does not exist.
    NotFound,
}

impl Reason {
    /// The `StatusCause.reason` string.
    pub fn cause(self) -> &'static str {
        match self {
            Reason::Required => "FieldValueRequired",
            Reason::Invalid | Reason::TypeInvalid => "FieldValueInvalid",
            Reason::NotSupported => "FieldValueNotSupported",
            Reason::Duplicate => "FieldValueDuplicate",
            Reason::Forbidden => "FieldValueForbidden",
            Reason::TooLong => "FieldValueTooLong",
            Reason::TooMany => "FieldValueTooMany",
            Reason::UnknownField => "FieldValueInvalid",
            Reason::NotFound => "FieldValueNotFound",
        }
    }
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldError {
    /// Where.
    pub path: FieldPath,
    /// What kind of problem.
    pub reason: Reason,
    /// What is wrong and what was expected.
    pub message: String,
}

impl FieldError {
    /// A missing required value.
    pub fn required(path: FieldPath, what: impl fmt::Display) -> Self {
        FieldError {
            path,
            reason: Reason::Required,
            message: format!("Required value: {what}"),
        }
    }

    /// A malformed value; `value` is shown quoted.
    pub fn invalid(path: FieldPath, value: impl fmt::Debug, detail: impl fmt::Display) -> Self {
        FieldError {
            path,
            reason: Reason::Invalid,
            message: format!("Invalid value: {value:?}: {detail}"),
        }
    }

    /// A value outside the supported set.
    pub fn not_supported(path: FieldPath, value: &str, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        FieldError {
            path,
            reason: Reason::NotSupported,
            message: format!("Unsupported value: {value:?}: supported values: {list}"),
        }
    }

    /// A repeated value.
    pub fn duplicate(path: FieldPath, value: impl fmt::Debug) -> Self {
        FieldError {
            path,
            reason: Reason::Duplicate,
            message: format!("Duplicate value: {value:?}"),
        }
    }

    /// A field that must not be set.
    pub fn forbidden(path: FieldPath, detail: impl fmt::Display) -> Self {
        FieldError {
            path,
            reason: Reason::Forbidden,
            message: format!("Forbidden: {detail}"),
        }
    }

    /// A reference to something that does not exist.
    pub fn not_found(path: FieldPath, value: impl fmt::Debug, detail: impl fmt::Display) -> Self {
        FieldError {
            path,
            reason: Reason::NotFound,
            message: format!("Not found: {value:?}: {detail}"),
        }
    }

    /// A value longer than allowed.
    pub fn too_long(path: FieldPath, max: usize) -> Self {
        FieldError {
            path,
            reason: Reason::TooLong,
            message: format!("Too long: may not be more than {max} bytes"),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
