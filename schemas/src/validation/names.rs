//! Name and value rules of Kubernetes (k8s.io/apimachinery/pkg/util/validation):
//! DNS labels and subdomains, qualified names, label values, IANA service
//! names, IPs and CIDRs. Each returns the reason a value fails, or `None`.

use std::net::IpAddr;

fn alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// RFC 1123 label: ≤ 63 lower-case alphanumerics or '-', starting and ending alphanumeric.
pub fn dns1123_label(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("must not be empty".into());
    }
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let b = s.as_bytes();
    if !b.iter().all(|&c| alnum_lower(c) || c == b'-')
        || !alnum_lower(b[0])
        || !alnum_lower(b[b.len() - 1])
    {
        return Some(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')".into(),
        );
    }
    None
}

/// RFC 1035 label (Service names): like an RFC 1123 label but starting with a letter.
pub fn dns1035_label(s: &str) -> Option<String> {
    if let Some(e) = dns1123_label(s) {
        return Some(e.replace("RFC 1123", "RFC 1035"));
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Some(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')".into(),
        );
    }
    None
}

/// RFC 1123 subdomain: ≤ 253 characters, dot-separated RFC 1123 labels.
pub fn dns1123_subdomain(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("must not be empty".into());
    }
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    // apimachinery's subdomain regex: labels of any length (only the total is limited)
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter().all(|&c| alnum_lower(c) || c == b'-')
            && alnum_lower(b[0])
            && alnum_lower(b[b.len() - 1])
    };
    if !s.split('.').all(label_ok) {
        return Some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')".into(),
        );
    }
    None
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
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A qualified name (label and annotation keys): `[prefix/]name`, prefix a
/// DNS subdomain, name ≤ 63 alphanumerics, '-', '_' or '.'.
pub fn qualified_name(s: &str) -> Option<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some("prefix part must not be empty".into());
        }
        if let Some(e) = dns1123_subdomain(p) {
            return Some(format!("prefix part {e}"));
        }
    }
    if name.is_empty() {
        return Some("name part must not be empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !qualified_name_part(name) {
        return Some(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc'), with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into(),
        );
    }
    None
}

/// A label value: empty, or ≤ 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric.
pub fn label_value(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if !qualified_name_part(s) {
        return Some(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345')".into(),
        );
    }
    None
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
