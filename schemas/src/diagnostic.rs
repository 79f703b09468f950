//! `Diagnostic`: one problem found in a manifest file, located by file, line,
//! column, document, object and field path; printed for people and as JSON.

use std::fmt;

use serde::Serialize;

use crate::korral::SourceError;

/// What class of problem a diagnostic reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Class {
    /// The file could not be read.
    Io,
    /// Not valid YAML/JSON (includes duplicate keys, alias bombs, excessive nesting).
    Syntax,
    /// A document over the size limit.
    TooLarge,
    /// A document that is not a mapping.
    NotAMapping,
    /// apiVersion or kind missing.
    MissingType,
    /// A kind korral does not serve.
    UnknownKind,
    /// A field violates the kind's schema or rules.
    Invalid,
    /// The same object defined twice.
    Duplicate,
}

/// One problem in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// The file, as given.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub column: u32,
    /// 0-based index of the YAML document in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// `Kind namespace/name` (or `Kind name`) where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The field path, e.g. `spec.template.spec.containers[0].image`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The class of problem.
    pub class: Class,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        f.write_str(":")?;
        if let Some(d) = self.document {
            write!(f, " [document {d}]")?;
        }
        if let Some(o) = &self.object {
            write!(f, " {o}:")?;
        }
        if let Some(p) = &self.path {
            write!(f, " {p}:")?;
        }
        write!(f, " {}", self.message)
    }
}

impl From<&Diagnostic> for SourceError {
    fn from(d: &Diagnostic) -> Self {
        SourceError {
            file: Some(d.file.clone()),
            line: (d.line > 0).then_some(i64::from(d.line)),
            document: d.document.map(|x| x as i64),
            object: d.object.clone(),
            path: d.path.clone(),
            message: d.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_every_location_part() {
        let d = Diagnostic {
            file: "app.yaml".into(),
            line: 12,
            column: 9,
            document: Some(1),
            object: Some("Deployment default/web".into()),
            path: Some("spec.replicas".into()),
            class: Class::Invalid,
            message: "Invalid value: -1: must be greater than or equal to 0".into(),
        };
        assert_eq!(
            d.to_string(),
            "app.yaml:12:9: [document 1] Deployment default/web: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
