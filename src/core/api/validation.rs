//! Client-side validation of a policy, with the same rules and messages as admission.
//!
//! The CRD's CEL rules are evaluated here by kube's CEL engine against the very schema that
//! `redis-pool-operator crd` prints, so `plan` and `kubectl apply` agree. Shape errors (wrong
//! types, missing or unknown fields) come from serde with the field's path.

use std::fmt;

use super::RedisPoolPolicy;
use kube::CustomResourceExt;

/// One violated rule: where, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending field, like `spec.tiers[0].workers`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// All the violations of one policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Invalid(pub Vec<Violation>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", lines.join("; "))
    }
}

fn one(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid(vec![Violation { field: field.into(), message: message.into() }])
}

/// Parses one YAML document into a policy, rejecting what the API server would reject.
pub fn parse_policy(yaml: &str) -> Result<RedisPoolPolicy, Invalid> {
    let value: serde_json::Value = serde_yaml::from_str(yaml).map_err(|e| one("", format!("not valid YAML: {e}")))?;
    policy_from_value(value)
}

/// Checks kind and shape (serde), then the CEL rules.
pub fn policy_from_value(value: serde_json::Value) -> Result<RedisPoolPolicy, Invalid> {
    let api_version = value.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
    let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
    if api_version != "redispool.io/v1alpha1" || kind != "RedisPoolPolicy" {
        return Err(one(
            "",
            format!(
                "expected apiVersion redispool.io/v1alpha1 and kind RedisPoolPolicy, found {api_version:?} {kind:?}"
            ),
        ));
    }
    let mut unknown = Vec::new();
    let policy: RedisPoolPolicy = {
        let mut track = serde_path_to_error::Track::new();
        let inner = serde_path_to_error::Deserializer::new(&value, &mut track);
        let result = serde_ignored::deserialize(inner, |path| unknown.push(path.to_string()));
        result.map_err(|e| one(json_path(&track.path().to_string()), shape_message(&e.to_string())))?
    };
    // Status is the operator's; anything the operator does not know in spec is a typo.
    let mut violations: Vec<Violation> = unknown
        .into_iter()
        .map(|p| json_path(&p))
        .filter(|p| p.starts_with("spec"))
        .map(|p| Violation {
            message: "unknown field; check its spelling against `kubectl explain rpp.spec`".into(),
            field: p,
        })
        .collect();
    violations.extend(cel_violations(&policy));
    if violations.is_empty() { Ok(policy) } else { Err(Invalid(violations)) }
}

/// Checks an already typed policy against the CEL rules of the CRD.
pub fn validate(policy: &RedisPoolPolicy) -> Result<(), Invalid> {
    let v = cel_violations(policy);
    if v.is_empty() { Ok(()) } else { Err(Invalid(v)) }
}

/// The CRD's schema with its CEL rules compiled, once per process: deriving the schema and
/// compiling the rules is by far the most expensive thing a reconcile would otherwise do.
static COMPILED: std::sync::LazyLock<kube::core::cel::CompiledSchema> = std::sync::LazyLock::new(|| {
    let crd = RedisPoolPolicy::crd();
    let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
    let schema = serde_json::to_value(schema.expect("the derived CRD has an openAPIV3Schema")).expect("a JSON schema");
    kube::core::cel::compile_schema(&schema)
});

fn cel_violations(policy: &RedisPoolPolicy) -> Vec<Violation> {
    let object = serde_json::to_value(policy).expect("a policy serializes to JSON");
    match kube::core::cel::validate_compiled(&COMPILED, &object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| Violation { field: e.field_path.trim_start_matches('.').to_string(), message: e.message })
            .collect(),
    }
}

/// serde paths use `.0` for sequence elements; people (and the API server) write `[0]`.
fn json_path(serde_path: &str) -> String {
    let mut out = String::new();
    for part in serde_path.split('.').filter(|p| !p.is_empty() && *p != "?") {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn shape_message(serde_message: &str) -> String {
    // serde says "invalid type: string \"four\", expected i32"; say what to write instead.
    let m = serde_message.replace("expected i32", "expected an integer").replace("expected i64", "expected an integer");
    m.replace("expected f64", "expected a number")
}

/// The CRD schema, for callers that validate raw objects.
pub fn crd() -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    RedisPoolPolicy::crd()
}
