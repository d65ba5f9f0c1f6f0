//! The operator's policy: one TOML file naming the callers (their roles and agency), the
//! agencies (their scopes), where bearer tokens are verified, and the Cedar rules file.
//!
//! ```toml
//! rules = "registry.cedar"            # Cedar policies, beside this file
//!
//! [tokens]                            # optional: accept bearer tokens (JWT)
//! jwks = "identity-provider.jwks"     # the provider's public keys; never fetched
//! issuer = "https://id.example.gov"
//! audience = "registry"
//!
//! [agencies.province-a]
//! scopes = ["units/0190f5c8-…"]       # the units whose trees the agency records
//!
//! [limits]                            # optional: every caller's allowance of calls
//! per_second = 100
//! burst = 200
//!
//! [callers."registrar-a"]             # a certificate's name or a token's subject
//! roles = ["registrar"]
//! agency = "province-a"
//! limits = { per_second = 20 }        # its own allowance, instead of [limits]
//! ```
//!
//! Everything is checked when the file is loaded, before the daemon binds: the rules parse and
//! validate against the schema, every agency a caller names exists, every scope is a unit's
//! name, the key file holds keys. An error names the file and, where it can, the line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use cedar_policy::{PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use registry_domain::UnitId;
use serde::Deserialize;
use thiserror::Error;

use crate::tokens::{TokenSettings, Verifier};
use crate::{Certified, Identity, Proof, Rules};

/// The schema every policy is validated against.
pub const SCHEMA: &str = include_str!("schema.cedarschema");

/// A policy that cannot be used: names the file and, where known, the line.
#[derive(Debug, Error)]
#[error("{}{}: {problem}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct PolicyError {
    /// The file.
    pub file: PathBuf,
    /// The line (from 1), where the problem has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: String,
}

impl PolicyError {
    fn new(file: &Path, line: Option<usize>, problem: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    rules: PathBuf,
    tokens: Option<TokenFile>,
    limits: Option<Rate>,
    #[serde(default)]
    agencies: HashMap<String, AgencyFile>,
    #[serde(default)]
    callers: HashMap<String, CallerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    jwks: PathBuf,
    issuer: String,
    audience: String,
    /// Seconds of clock skew tolerated on expiry and not-before [default: 60].
    leeway_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgencyFile {
    scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerFile {
    #[serde(default)]
    roles: Vec<String>,
    agency: Option<String>,
    limits: Option<Rate>,
}

/// A caller's allowance of calls: `per_second` on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Calls a second, on average.
    pub per_second: u32,
    /// Calls at once after a quiet spell [default: per_second].
    pub burst: Option<u32>,
}

impl Rate {
    fn quota(self) -> Option<governor::Quota> {
        let rate = std::num::NonZeroU32::new(self.per_second)?;
        let burst = self
            .burst
            .and_then(std::num::NonZeroU32::new)
            .unwrap_or(rate);
        Some(governor::Quota::per_second(rate).allow_burst(burst))
    }
}

/// A caller as the policy file describes it.
#[derive(Debug)]
struct Described {
    roles: Vec<String>,
    agency: Option<String>,
    limits: Option<Rate>,
}

/// The loaded policy: who is who, and the rules.
pub struct Access {
    rules: Rules,
    callers: HashMap<String, Described>,
    agencies: HashMap<String, Vec<UnitId>>,
    tokens: Option<Verifier>,
    certified: Certified,
    /// Every caller's allowance unless its own entry says otherwise.
    limits: Option<Rate>,
    /// Each caller's bucket, by name: shared by its certificate and all its tokens.
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
}

/// A caller's bucket of calls.
pub type Bucket = governor::DefaultDirectRateLimiter;

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("callers", &self.callers.len())
            .field("agencies", &self.agencies.len())
            .field("tokens", &self.tokens.is_some())
            .finish()
    }
}

impl Access {
    /// Reads and checks the policy file at `path` and the files it names.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::new(path, None, e.to_string()))?;
        let file: PolicyFile = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|span| line_of(&text, span.start));
            PolicyError::new(path, line, e.message().to_owned())
        })?;
        let beside = |name: &Path| path.parent().unwrap_or(Path::new(".")).join(name);
        let rules_path = beside(&file.rules);
        let rules_text = std::fs::read_to_string(&rules_path)
            .map_err(|e| PolicyError::new(&rules_path, None, e.to_string()))?;
        let policies = parse_rules(&rules_path, &rules_text)?;
        let mut agencies = HashMap::new();
        for (name, agency) in file.agencies {
            let mut scopes = Vec::new();
            for scope in &agency.scopes {
                let unit = parse_unit(scope).ok_or_else(|| {
                    PolicyError::new(
                        path,
                        None,
                        format!(
                            "agency {name:?}: scope {:?} is not a unit's name (units/<uuid>)",
                            registry_domain::quote(scope)
                        ),
                    )
                })?;
                scopes.push(unit);
            }
            agencies.insert(name, scopes);
        }
        let mut callers = HashMap::new();
        for (name, caller) in file.callers {
            if let Some(agency) = &caller.agency {
                if !agencies.contains_key(agency) {
                    return Err(PolicyError::new(
                        path,
                        None,
                        format!("caller {name:?}: no agency {agency:?} under [agencies]"),
                    ));
                }
            }
            if caller.limits.is_some_and(|r| r.per_second == 0) {
                return Err(PolicyError::new(
                    path,
                    None,
                    format!("caller {name:?}: limits.per_second must be at least 1"),
                ));
            }
            callers.insert(
                name,
                Described {
                    roles: caller.roles,
                    agency: caller.agency,
                    limits: caller.limits,
                },
            );
        }
        if file.limits.is_some_and(|r| r.per_second == 0) {
            return Err(PolicyError::new(
                path,
                None,
                "limits.per_second must be at least 1",
            ));
        }
        let tokens = match file.tokens {
            None => None,
            Some(tokens) => {
                let jwks = beside(&tokens.jwks);
                let settings = TokenSettings {
                    issuer: tokens.issuer,
                    audience: tokens.audience,
                    leeway_seconds: tokens.leeway_seconds.unwrap_or(60),
                };
                Some(
                    Verifier::from_file(&jwks, settings)
                        .map_err(|problem| PolicyError::new(&jwks, None, problem))?,
                )
            }
        };
        Ok(Self {
            rules: Rules::new(policies),
            callers,
            agencies,
            tokens,
            certified: Mutex::default(),
            limits: file.limits,
            buckets: Mutex::default(),
        })
    }

    /// Whether callers may bring bearer tokens (then a client certificate is optional).
    pub fn accepts_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }

    pub(crate) fn tokens(&self) -> Option<&Verifier> {
        self.tokens.as_ref()
    }

    pub(crate) fn certified(&self) -> &Certified {
        &self.certified
    }

    /// `name` as the policy file describes it (no roles when it does not know the name).
    pub(crate) fn describe(&self, name: &str, proof: Proof) -> Identity {
        let described = self.callers.get(name);
        let agency = described.and_then(|d| d.agency.clone());
        let scopes = agency
            .as_ref()
            .and_then(|a| self.agencies.get(a))
            .cloned()
            .unwrap_or_default();
        let bucket = described
            .and_then(|d| d.limits)
            .or(self.limits)
            .and_then(Rate::quota)
            .map(|quota| {
                let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
                Arc::clone(
                    buckets
                        .entry(name.to_owned())
                        .or_insert_with(|| Arc::new(Bucket::direct(quota))),
                )
            });
        let mut identity = Identity::new(
            name.to_owned(),
            proof,
            agency,
            described.map(|d| d.roles.clone()).unwrap_or_default(),
            scopes,
        );
        identity.bucket = bucket;
        identity
    }

    /// Takes one call from `who`'s allowance: `Err` with how long to wait when it has none
    /// left.
    pub fn admit(&self, who: &Identity) -> Result<(), std::time::Duration> {
        use governor::clock::Clock;
        match &who.bucket {
            None => Ok(()),
            Some(bucket) => bucket.check().map_err(|not_until| {
                not_until.wait_time_from(governor::clock::DefaultClock::default().now())
            }),
        }
    }
}

/// Parses Cedar rules and validates them against [`SCHEMA`] (strictly: a rule naming an
/// attribute or an action the schema lacks is an error, not a rule that never applies).
pub fn parse_rules(path: &Path, text: &str) -> Result<PolicySet, PolicyError> {
    let first_problem = |diagnostic: &dyn Diagnostic, message: String| {
        let line = diagnostic
            .labels()
            .and_then(|mut labels| labels.next())
            .map(|label| line_of(text, label.offset()));
        PolicyError::new(path, line, message)
    };
    let policies = PolicySet::from_str(text).map_err(|errors| {
        let message = errors.to_string();
        match errors.iter().next() {
            Some(first) => first_problem(first, message),
            None => PolicyError::new(path, None, message),
        }
    })?;
    let schema = schema();
    let validated = Validator::new(schema).validate(&policies, ValidationMode::Strict);
    if let Some(error) = validated.validation_errors().next() {
        return Err(first_problem(error, error.to_string()));
    }
    Ok(policies)
}

/// The schema, parsed.
pub fn schema() -> Schema {
    #[allow(clippy::expect_used)] // A constant the tests parse.
    Schema::from_cedarschema_str(SCHEMA)
        .expect("the built-in schema parses")
        .0
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A unit's resource name, `units/<uuid>`.
fn parse_unit(text: &str) -> Option<UnitId> {
    text.starts_with("units/").then(|| text.parse().ok())?
}
