//! Name and value rules of Kubernetes (k8s.io/apimachinery/pkg/util/validation):
//! DNS labels and subdomains, qualified names, label values, IANA service
//! names, IPs and CIDRs. Each returns the reason a value fails, or `None`.

use std::net::IpAddr;

fn alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn label_chars_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|&c| alnum_lower(c) || c == b'-')
        && alnum_lower(b[0])
        && alnum_lower(b[b.len() - 1])
}

/// Joins apimachinery's messages for one value as its validators list them.
fn first(msgs: Vec<&str>) -> Option<String> {
    (!msgs.is_empty()).then(|| msgs.join("; "))
}

/// RFC 1123 label (`IsDNS1123Label`): ≤ 63 lower-case alphanumerics or '-',
/// starting and ending alphanumeric.
pub fn dns1123_label(s: &str) -> Option<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push("must be no more than 63 characters");
    }
    if !label_chars_ok(s) {
        msgs.push(DNS1123_LABEL_MSG);
    }
    first(msgs)
}

/// RFC 1035 label (`IsDNS1035Label`, Service names): like an RFC 1123 label
/// but starting with a letter.
pub fn dns1035_label(s: &str) -> Option<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push("must be no more than 63 characters");
    }
    if !label_chars_ok(s) || !s.as_bytes()[0].is_ascii_lowercase() {
        msgs.push(DNS1035_LABEL_MSG);
    }
    first(msgs)
}

/// RFC 1123 subdomain (`IsDNS1123Subdomain`): ≤ 253 characters,
/// dot-separated labels of any length.
pub fn dns1123_subdomain(s: &str) -> Option<String> {
    let mut msgs = Vec::new();
    if s.len() > 253 {
        msgs.push("must be no more than 253 characters");
    }
    if !s.split('.').all(label_chars_ok) {
        msgs.push(DNS1123_SUBDOMAIN_MSG);
    }
    first(msgs)
}

/// A path segment name (`path.IsValidPathSegmentName`): any text but `.`,
/// `..`, or one containing `/` or `%`.
pub fn path_segment(s: &str) -> Option<String> {
    match s {
        "." => return Some("may not be '.'".into()),
        ".." => return Some("may not be '..'".into()),
        _ => {}
    }
    if s.contains('/') {
        return Some("may not contain '/'".into());
    }
    if s.contains('%') {
        return Some("may not contain '%'".into());
    }
    None
}

fn qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A qualified name (`IsQualifiedName`: label and annotation keys):
/// `[prefix/]name`, prefix a DNS subdomain, name ≤ 63 alphanumerics, '-',
/// '_' or '.'.
pub fn qualified_name(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Some("prefix part must be non-empty".into());
            }
            if let Some(e) = dns1123_subdomain(prefix) {
                return Some(format!("prefix part {e}"));
            }
            name
        }
        _ => {
            return Some(format!(
                "{QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
        }
    };
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    let mut msgs = Vec::new();
    if name.len() > 63 {
        msgs.push("name part must be no more than 63 characters");
    }
    if !qualified_name_part(name) {
        msgs.push(QUALIFIED_NAME_MSG);
    }
    first(msgs)
}

/// A label value (`IsValidLabelValue`): empty, or ≤ 63 alphanumerics, '-',
/// '_' or '.', starting and ending alphanumeric.
pub fn label_value(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push("must be no more than 63 characters");
    }
    if !qualified_name_part(s) {
        msgs.push(LABEL_VALUE_MSG);
    }
    first(msgs)
}

/// An IANA service name (named ports): ≤ 15 lower-case alphanumerics or '-',
/// at least one letter, no leading, trailing or doubled '-'.
pub fn iana_svc_name(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > 15 {
        return Some("must be no more than 15 characters".into());
    }
    let b = s.as_bytes();
    if !b.iter().all(|&c| alnum_lower(c) || c == b'-') {
        return Some(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
        );
    }
    if s.contains("--") {
        return Some("must not contain consecutive hyphens".into());
    }
    if b[0] == b'-' || b[b.len() - 1] == b'-' {
        return Some("must not begin or end with a hyphen".into());
    }
    if !b.iter().any(u8::is_ascii_lowercase) {
        return Some("must contain at least one letter (a-z)".into());
    }
    None
}

/// A port number 1–65535.
pub fn port_number(p: i32) -> Option<String> {
    (!(1..=65535).contains(&p)).then(|| "must be between 1 and 65535, inclusive".into())
}

/// An IPv4 or IPv6 address.
pub fn ip_address(s: &str) -> Option<String> {
    s.parse::<IpAddr>()
        .is_err()
        .then(|| "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into())
}

/// A CIDR such as `10.244.0.0/24`.
pub fn cidr(s: &str) -> Option<String> {
    let bad =
        || Some("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".to_string());
    let Some((ip, bits)) = s.split_once('/') else {
        return bad();
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return bad();
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match bits.parse::<u8>() {
        Ok(b) if b <= max => None,
        _ => bad(),
    }
}

/// A ConfigMap or Secret key: ≤ 253 alphanumerics, '-', '_' or '.', not `.` or `..`.
pub fn config_map_key(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > 253 {
        return Some("must be between 1 and 253 characters".into());
    }
    if s == "." || s == ".." || s.starts_with("..") {
        return Some("must not be '.' or '..' or start with '..'".into());
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Some(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name')".into(),
        );
    }
    None
}

/// An environment variable name: printable ASCII, not containing '='.
pub fn env_var_name(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("must not be empty".into());
    }
    if !s.bytes().all(|c| (b' '..=b'~').contains(&c) && c != b'=') {
        return Some("a valid environment variable name must consist only of printable ASCII characters other than '='".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert_eq!(dns1123_label("web-1"), None);
        assert!(dns1123_label("Web").is_some());
        assert!(dns1123_label("-web").is_some());
        assert!(dns1123_label(&"a".repeat(64)).is_some());
        assert_eq!(dns1123_subdomain("a.b-c.d"), None);
        assert!(dns1123_subdomain("a..b").is_some());
        assert!(dns1035_label("1abc").is_some());
        assert_eq!(dns1035_label("abc1"), None);
    }

    #[test]
    fn qualified_names_and_label_values() {
        assert_eq!(qualified_name("app.kubernetes.io/name"), None);
        assert_eq!(qualified_name("App_1"), None);
        assert!(qualified_name("/x").is_some());
        assert!(qualified_name("a/b/c").is_some());
        assert!(qualified_name("-x").is_some());
        assert_eq!(label_value(""), None);
        assert_eq!(label_value("v1.2_3"), None);
        assert!(label_value("a b").is_some());
    }

    #[test]
    fn service_names_ports_ips() {
        assert_eq!(iana_svc_name("http"), None);
        assert!(iana_svc_name("8080").is_some());
        assert!(iana_svc_name("a--b").is_some());
        assert!(iana_svc_name("averyverylongname").is_some());
        assert!(port_number(0).is_some());
        assert_eq!(port_number(65535), None);
        assert_eq!(ip_address("10.0.0.1"), None);
        assert!(ip_address("10.0.0.256").is_some());
        assert_eq!(cidr("10.244.0.0/16"), None);
        assert!(cidr("10.244.0.0/33").is_some());
        assert_eq!(config_map_key("app.properties"), None);
        assert!(config_map_key("a/b").is_some());
        assert!(env_var_name("A=B").is_some());
    }
}
