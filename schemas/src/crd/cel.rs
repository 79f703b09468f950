//! CEL rules of CustomResourceDefinitions (`x-kubernetes-validations`) and
//! ValidatingAdmissionPolicies, evaluated with the `cel` crate: its standard
//! library, macros, optional types and string/list extensions, plus the
//! Kubernetes list and regex functions CRDs use most (`isSorted`, `sum`,
//! `min`, `max`, `find`, `findAll`, `isURL`). A rule that calls a function
//! korral does not provide is reported as unsupported (a warning naming the
//! rule), never passed silently.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

pub use cel::Value as CelValue;
use cel::common::value::Val;
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program};
use serde_json::Value;

/// The environment every rule is compiled and run in.
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // both extensions only fail on duplicate declarations, which a fresh stdlib has none of
        let _ = env.add_extension(cel::extensions::strings);
        let _ = env.add_extension(cel::extensions::lists);
        Arc::new(env)
    })
}

/// Compiles (parses) a rule, returning cel-go's error text on failure.
pub fn compile(expr: &str) -> Result<Program, String> {
    env().compile(expr).map_err(|e| e.to_string())
}

/// Converts JSON to CEL: integers stay signed ints (as Kubernetes' schema
/// types make them), objects become string-keyed maps.
pub fn to_cel(v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => CelValue::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<Key, CelValue> = m
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            CelValue::Map(Map { map: Arc::new(map) })
        }
    }
}

/// How a rule evaluation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The rule held.
    Pass,
    /// The rule evaluated to false.
    Fail,
    /// The evaluation failed as Kubernetes' would (`no such key: x`).
    Error(String),
    /// The rule needs something korral's evaluator does not have.
    Unsupported(String),
}

fn bind(ctx: &mut Context<'_, '_>, name: &str, v: CelValue) -> Result<(), String> {
    let boxed: Box<dyn Val> = v.try_into().map_err(|e| format!("{e:?}"))?;
    ctx.add_variable_as_val(name, boxed);
    Ok(())
}

fn context(vars: &[(&str, CelValue)]) -> Result<Context<'static, 'static>, String> {
    let mut ctx = Context::with_env(env().clone());
    register_functions(&mut ctx);
    for (name, v) in vars {
        bind(&mut ctx, name, v.clone())?;
    }
    Ok(ctx)
}

fn classify(e: &ExecutionError) -> Outcome {
    match e {
        ExecutionError::UndeclaredReference(name)
            if !matches!(name.as_str(), "self" | "oldSelf") =>
        {
            Outcome::Unsupported(format!("undeclared reference to '{name}'"))
        }
        ExecutionError::NoSuchKey(k) => Outcome::Error(format!("no such key: {k}")),
        ExecutionError::NoSuchOverload(o) => Outcome::Error(format!(
            "no such overload: {}({})",
            o.function(),
            o.argument_types().join(", ")
        )),
        other => Outcome::Error(other.to_string()),
    }
}

/// Evaluates a compiled rule with `self` (and `oldSelf`, when given).
pub fn evaluate(program: &Program, self_value: &Value, old_self: Option<&Value>) -> Outcome {
    let mut vars = vec![("self", to_cel(self_value))];
    if let Some(old) = old_self {
        vars.push(("oldSelf", to_cel(old)));
    }
    let ctx = match context(&vars) {
        Ok(c) => c,
        Err(e) => return Outcome::Unsupported(e),
    };
    match program.execute(&ctx) {
        Ok(CelValue::Bool(true)) => Outcome::Pass,
        Ok(CelValue::Bool(false)) => Outcome::Fail,
        Ok(other) => Outcome::Error(format!(
            "rule did not evaluate to a bool: {:?}",
            other.type_of()
        )),
        Err(e) => classify(&e),
    }
}

/// Evaluates a message expression to a string, if it does so cleanly.
pub fn evaluate_message(
    program: &Program,
    self_value: &Value,
    old_self: Option<&Value>,
) -> Option<String> {
    let mut vars = vec![("self", to_cel(self_value))];
    if let Some(old) = old_self {
        vars.push(("oldSelf", to_cel(old)));
    }
    let ctx = context(&vars).ok()?;
    match program.execute(&ctx).ok()? {
        CelValue::String(s) => {
            Some(s.trim().to_string()).filter(|s| !s.is_empty() && !s.contains('\n'))
        }
        _ => None,
    }
}

/// A CEL value as JSON (an admission policy's `variables`): lists, maps,
/// numbers, strings, booleans and null; anything else as its text.
pub fn from_cel(v: &CelValue) -> Value {
    match v {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => Value::Bool(*b),
        CelValue::Int(i) => Value::from(*i),
        CelValue::UInt(u) => Value::from(*u),
        CelValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        CelValue::String(s) => Value::String(s.to_string()),
        CelValue::List(l) => Value::Array(l.iter().map(from_cel).collect()),
        CelValue::Map(m) => Value::Object(
            m.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Key::String(s) => s.to_string(),
                        Key::Int(i) => i.to_string(),
                        Key::Uint(u) => u.to_string(),
                        Key::Bool(b) => b.to_string(),
                    };
                    (key, from_cel(v))
                })
                .collect(),
        ),
        other => Value::String(format!("{other:?}")),
    }
}

/// Evaluates an expression over named JSON variables (admission policies).
pub fn evaluate_with(program: &Program, vars: &[(&str, &Value)]) -> Result<CelValue, Outcome> {
    let vars: Vec<(&str, CelValue)> = vars.iter().map(|(n, v)| (*n, to_cel(v))).collect();
    let ctx = context(&vars).map_err(Outcome::Unsupported)?;
    program.execute(&ctx).map_err(|e| classify(&e))
}

fn list_of(v: &CelValue) -> Option<&Arc<Vec<CelValue>>> {
    match v {
        CelValue::List(l) => Some(l),
        _ => None,
    }
}

fn compare(a: &CelValue, b: &CelValue) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (CelValue::Int(x), CelValue::Int(y)) => Some(x.cmp(y)),
        (CelValue::UInt(x), CelValue::UInt(y)) => Some(x.cmp(y)),
        (CelValue::Float(x), CelValue::Float(y)) => x.partial_cmp(y),
        (CelValue::String(x), CelValue::String(y)) => Some(x.cmp(y)),
        (CelValue::Bool(x), CelValue::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Kubernetes' list and regex library functions, as context functions.
fn register_functions(ctx: &mut Context<'_, '_>) {
    use cel::extractors::This;
    let _ = ctx.add_function(
        "isSorted",
        |This(list): This<CelValue>| -> Result<bool, ExecutionError> {
            let l = list_of(&list)
                .ok_or_else(|| ExecutionError::function_error("isSorted", "not a list"))?;
            Ok(l.windows(2)
                .all(|w| compare(&w[0], &w[1]).is_some_and(|o| o != std::cmp::Ordering::Greater)))
        },
    );
    let _ = ctx.add_function(
        "sum",
        |This(list): This<CelValue>| -> Result<CelValue, ExecutionError> {
            let l = list_of(&list)
                .ok_or_else(|| ExecutionError::function_error("sum", "not a list"))?;
            let mut int: i64 = 0;
            let mut float: f64 = 0.0;
            let mut is_float = false;
            for v in l.iter() {
                match v {
                    CelValue::Int(i) => {
                        int = int.checked_add(*i).ok_or_else(|| {
                            ExecutionError::function_error("sum", "integer overflow")
                        })?
                    }
                    CelValue::Float(f) => {
                        is_float = true;
                        float += f;
                    }
                    _ => {
                        return Err(ExecutionError::function_error(
                            "sum",
                            "not a list of numbers",
                        ));
                    }
                }
            }
            Ok(if is_float {
                CelValue::Float(float + int as f64)
            } else {
                CelValue::Int(int)
            })
        },
    );
    for (name, want) in [
        ("min", std::cmp::Ordering::Less),
        ("max", std::cmp::Ordering::Greater),
    ] {
        let _ = ctx.add_function(
            name,
            move |This(list): This<CelValue>| -> Result<CelValue, ExecutionError> {
                let l = list_of(&list)
                    .ok_or_else(|| ExecutionError::function_error(name, "not a list"))?;
                let mut best: Option<&CelValue> = None;
                for v in l.iter() {
                    best = match best {
                        None => Some(v),
                        Some(b) if compare(v, b) == Some(want) => Some(v),
                        keep => keep,
                    };
                }
                best.cloned().ok_or_else(|| {
                    ExecutionError::function_error(name, format!("{name} called on empty list"))
                })
            },
        );
    }
    let _ = ctx.add_function(
        "find",
        |This(s): This<Arc<String>>, re: Arc<String>| -> Result<CelValue, ExecutionError> {
            let re =
                regex::Regex::new(&re).map_err(|e| ExecutionError::function_error("find", e))?;
            Ok(CelValue::String(Arc::new(
                re.find(&s)
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default(),
            )))
        },
    );
    let _ = ctx.add_function(
        "findAll",
        |This(s): This<Arc<String>>, re: Arc<String>| -> Result<CelValue, ExecutionError> {
            let re =
                regex::Regex::new(&re).map_err(|e| ExecutionError::function_error("findAll", e))?;
            Ok(CelValue::List(Arc::new(
                re.find_iter(&s)
                    .map(|m| CelValue::String(Arc::new(m.as_str().to_string())))
                    .collect(),
            )))
        },
    );
    let _ = ctx.add_function("isURL", |s: Arc<String>| -> bool {
        s.split_once("://")
            .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty())
            || s.starts_with('/')
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(rule: &str, v: Value) -> Outcome {
        evaluate(&compile(rule).expect("compiles"), &v, None)
    }

    #[test]
    fn gateway_api_rules_evaluate() {
        let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP"}, {"name": "http", "port": 443, "protocol": "HTTPS"}]);
        assert_eq!(
            run(
                "self.all(l1, self.exists_one(l2, l1.name == l2.name))",
                listeners
            ),
            Outcome::Fail
        );
        let path = json!({"type": "PathPrefix", "value": "/api"});
        assert_eq!(
            run(
                "(self.type in ['Exact','PathPrefix']) ? self.value.startsWith('/') : true",
                path.clone()
            ),
            Outcome::Pass
        );
        assert_eq!(
            run(
                r#"(self.type in ['Exact','PathPrefix']) ? self.value.matches(r"""^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$""") : true"#,
                path
            ),
            Outcome::Pass
        );
        let filters = json!([{"type": "RequestHeaderModifier"}, {"type": "RequestHeaderModifier"}]);
        assert_eq!(
            run(
                "self.filter(f, f.type == 'RequestHeaderModifier').size() <= 1",
                filters
            ),
            Outcome::Fail
        );
        let timeouts = json!({"request": "10s", "backendRequest": "20s"});
        assert_eq!(
            run(
                "!(has(self.request) && has(self.backendRequest) && duration(self.request) != duration('0s') && duration(self.backendRequest) > duration(self.request))",
                timeouts
            ),
            Outcome::Fail
        );
    }

    #[test]
    fn transition_rules_see_old_self() {
        let p = compile("self == oldSelf").expect("compiles");
        assert_eq!(evaluate(&p, &json!("a"), Some(&json!("a"))), Outcome::Pass);
        assert_eq!(evaluate(&p, &json!("b"), Some(&json!("a"))), Outcome::Fail);
    }

    #[test]
    fn kubernetes_list_functions_and_missing_keys() {
        assert_eq!(
            run(
                "self.isSorted() && self.sum() == 6 && self.max() == 3",
                json!([1, 2, 3])
            ),
            Outcome::Pass
        );
        assert!(
            matches!(run("self.nope == 1", json!({})), Outcome::Error(e) if e.contains("no such key"))
        );
        assert!(matches!(
            run("self.semverish()", json!("x")),
            Outcome::Unsupported(_) | Outcome::Error(_)
        ));
    }
}
