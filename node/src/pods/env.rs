//! A container's environment as the kubelet builds it: `envFrom` sources,
//! then `env` in order, with `valueFrom` (ConfigMap and Secret keys, the
//! downward API) and `$(VAR)` references to variables defined before; and
//! `$(VAR)` expansion of command and args.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use schemas::MetaExt;

use crate::pods::downward::{self, Facts};
use crate::pods::sources::Sources;

/// Why the environment could not be built (the container waits with
/// `CreateContainerConfigError`).
pub type EnvError = String;

/// Expands `$(NAME)` from `vars`; `$$` is a literal `$`; unknown references stay as written.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'('
                && let Some(end) = s[i + 2..].find(')')
            {
                let name = &s[i + 2..i + 2 + end];
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&s[i..i + 3 + end]),
                }
                i += 3 + end;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn utf8(name: &str, key: &str, bytes: &[u8]) -> Result<String, EnvError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| format!("key {key:?} of {name:?} is not UTF-8 and cannot be an env var"))
}

/// Builds the environment of `container` over the Service variables
/// (`services`, see `service_env`), which `envFrom` and `env` override and
/// `$(VAR)` references see.
pub async fn build(
    pod: &Pod,
    container: &Container,
    facts: &Facts,
    sources: &mut Sources<'_>,
    services: &[(String, String)],
) -> Result<Vec<(String, String)>, EnvError> {
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let set =
        |order: &mut Vec<String>, vars: &mut HashMap<String, String>, k: String, v: String| {
            if !vars.contains_key(&k) {
                order.push(k.clone());
            }
            vars.insert(k, v);
        };
    for (k, v) in services {
        set(&mut order, &mut vars, k.clone(), v.clone());
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (name, optional, data) = if let Some(r) = &from.config_map_ref {
            let name = r.name.clone();
            let data = sources.config_map(&name).await?.clone();
            (
                format!("configmap {name}"),
                r.optional.unwrap_or(false),
                data,
            )
        } else if let Some(r) = &from.secret_ref {
            let name = r.name.clone();
            let data = sources.secret(&name).await?.clone();
            (format!("secret {name}"), r.optional.unwrap_or(false), data)
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    if let Ok(v) = String::from_utf8(v) {
                        set(&mut order, &mut vars, format!("{prefix}{k}"), v);
                    }
                }
            }
            None if optional => {}
            None => return Err(format!("{name} not found")),
        }
    }
    for e in container.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (_, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    Some(downward::field(pod, f, facts)?)
                } else if let Some(r) = &from.resource_field_ref {
                    Some(downward::resource(pod, container, r, facts)?)
                } else if let Some(k) = &from.config_map_key_ref {
                    let name = k.name.clone();
                    let data = sources.config_map(&name).await?;
                    match data.as_ref().map(|d| d.get(&k.key)) {
                        Some(Some(v)) => Some(utf8(&name, &k.key, v)?),
                        _ if k.optional.unwrap_or(false) => None,
                        None => return Err(format!("configmap {name:?} not found")),
                        Some(None) => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {}/{name}",
                                k.key,
                                pod.metadata.namespace_str()
                            ));
                        }
                    }
                } else if let Some(k) = &from.secret_key_ref {
                    let name = k.name.clone();
                    let data = sources.secret(&name).await?;
                    match data.as_ref().map(|d| d.get(&k.key)) {
                        Some(Some(v)) => Some(utf8(&name, &k.key, v)?),
                        _ if k.optional.unwrap_or(false) => None,
                        None => return Err(format!("secret {name:?} not found")),
                        Some(None) => {
                            return Err(format!(
                                "couldn't find key {} in Secret {}/{name}",
                                k.key,
                                pod.metadata.namespace_str()
                            ));
                        }
                    }
                } else {
                    None
                }
            }
            (Some(v), None) => Some(expand(v, &vars)),
            (None, None) => Some(String::new()),
        };
        if let Some(v) = value {
            set(&mut order, &mut vars, e.name.clone(), v);
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|k| vars.get(&k).map(|v| (k.clone(), v.clone())))
        .collect())
}

/// Expands `$(VAR)` in command or args with the container's environment.
pub fn expand_all(items: &[String], env: &[(String, String)]) -> Vec<String> {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    items.iter().map(|s| expand(s, &vars)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars: HashMap<String, String> = [
            ("A".to_string(), "1".to_string()),
            ("B".into(), "x y".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(expand("$(A)-$(B)", &vars), "1-x y");
        assert_eq!(expand("$(MISSING)", &vars), "$(MISSING)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("cost: $5 é", &vars), "cost: $5 é");
        assert_eq!(expand("$(unterminated", &vars), "$(unterminated");
    }
}
