//! Bearer tokens: JWTs signed by the identity provider, verified against the public keys of a
//! JWKS file the operator installs (the registry never fetches keys over the network).
//!
//! A token is verified once: its identity is kept until the token expires, so that a system
//! calling many times with one token pays for one signature check. The algorithm is the key's
//! (its `alg`, else the one its type implies), never the token's own say: a token cannot pick
//! a weaker check. Shared-secret keys (`oct`) are refused: a JWKS names public keys.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use thiserror::Error;

use crate::Identity;

/// Why a token was refused. Never echoes the token.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TokenProblem {
    /// Not three base64url parts with a JSON header and claims.
    #[error("malformed (not a signed JWT)")]
    Malformed,
    /// Signed by a key the JWKS file does not hold.
    #[error("signed by a key this registry does not know (kid {0:?})")]
    UnknownKey(String),
    /// Signed with another algorithm than its key's.
    #[error("signed with an algorithm its key is not for")]
    WrongAlgorithm,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Past its `exp`.
    #[error("expired")]
    Expired,
    /// Before its `nbf`.
    #[error("not valid yet (nbf)")]
    NotYetValid,
    /// Another `iss`.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Another `aud`.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is missing or of the wrong type.
    #[error("claim {0:?} is missing or malformed")]
    Claim(String),
}

/// What tokens must say.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// The `iss` required.
    pub issuer: String,
    /// The `aud` required.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: u64,
}

/// The claims read from a verified token.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// One key of the file, ready to verify with.
struct Key {
    id: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

/// The most verified tokens kept; past it the cache starts again.
const MAX_CACHED: usize = 10_000;

/// Verifies tokens against the keys of one JWKS file, and remembers those it verified.
pub struct Verifier {
    keys: Vec<Key>,
    leeway: Duration,
    verified: Mutex<HashMap<String, Arc<Identity>>>,
}

impl Verifier {
    /// Reads the keys of the JWKS file at `path`; the error says what is wrong with it.
    pub fn from_file(path: &Path, settings: TokenSettings) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        Self::from_jwks(&text, settings)
    }

    /// Reads the keys of a JWKS document.
    pub fn from_jwks(text: &str, settings: TokenSettings) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        if set.keys.is_empty() {
            return Err("holds no keys".into());
        }
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let name = jwk
                .common
                .key_id
                .clone()
                .unwrap_or_else(|| format!("#{}", i + 1));
            let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (_, AlgorithmParameters::OctetKey(_)) => {
                    return Err(format!(
                        "key {name}: a shared secret (kty oct); a JWKS names public keys"
                    ))
                }
                (Some(alg), _) => alg
                    .to_string()
                    .parse::<Algorithm>()
                    .ok()
                    .ok_or_else(|| format!("key {name}: algorithm {alg} is not supported"))?,
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, AlgorithmParameters::EllipticCurve(ec)) => match ec.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => return Err(format!("key {name}: curve not supported")),
                },
                (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
                (None, _) => return Err(format!("key {name}: key type not supported")),
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {name}: {e}"))?;
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[&settings.issuer]);
            validation.set_audience(&[&settings.audience]);
            validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            validation.validate_nbf = true;
            validation.leeway = settings.leeway_seconds;
            keys.push(Key {
                id: jwk.common.key_id.clone(),
                key,
                validation,
            });
        }
        Ok(Self {
            keys,
            leeway: Duration::from_secs(settings.leeway_seconds),
            verified: Mutex::default(),
        })
    }

    /// The identity `token` proves, made by `describe` from its subject and expiry the first
    /// time the token is seen; later calls with the same token, until it expires, reuse it.
    pub fn verify(
        &self,
        token: &str,
        describe: impl FnOnce(&str, SystemTime) -> Identity,
    ) -> Result<Arc<Identity>, TokenProblem> {
        let now = SystemTime::now();
        {
            let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(identity) = verified.get(token) {
                let expires = identity.expires.unwrap_or(UNIX_EPOCH);
                if now > expires + self.leeway {
                    return Err(TokenProblem::Expired);
                }
                return Ok(Arc::clone(identity));
            }
        }
        let claims = self.check(token)?;
        let expires = UNIX_EPOCH + Duration::from_secs(claims.exp);
        let identity = Arc::new(describe(&claims.sub, expires));
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= MAX_CACHED {
            verified.retain(|_, i| i.expires.is_some_and(|e| now <= e + self.leeway));
            if verified.len() >= MAX_CACHED {
                verified.clear();
            }
        }
        verified.insert(token.to_owned(), Arc::clone(&identity));
        Ok(identity)
    }

    /// Verifies the token's signature and claims.
    fn check(&self, token: &str) -> Result<Claims, TokenProblem> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenProblem::Malformed)?;
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.id.as_deref() == Some(kid.as_str()))
                .ok_or_else(|| TokenProblem::UnknownKey(registry_domain::quote(kid)))?,
            None if self.keys.len() == 1 => &self.keys[0],
            None => return Err(TokenProblem::UnknownKey(String::new())),
        };
        if !key.validation.algorithms.contains(&header.alg) {
            return Err(TokenProblem::WrongAlgorithm);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation).map_err(
            |e| match e.into_kind() {
                ErrorKind::ExpiredSignature => TokenProblem::Expired,
                ErrorKind::ImmatureSignature => TokenProblem::NotYetValid,
                ErrorKind::InvalidIssuer => TokenProblem::WrongIssuer,
                ErrorKind::InvalidAudience => TokenProblem::WrongAudience,
                ErrorKind::InvalidSignature => TokenProblem::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenProblem::WrongAlgorithm,
                ErrorKind::MissingRequiredClaim(claim) => TokenProblem::Claim(claim),
                ErrorKind::Json(_) => TokenProblem::Claim("sub".into()),
                _ => TokenProblem::Malformed,
            },
        )?;
        let sub = &data.claims.sub;
        if sub.trim().is_empty() || sub.chars().count() > crate::MAX_NAME_CHARS {
            return Err(TokenProblem::Claim("sub".into()));
        }
        Ok(data.claims)
    }
}
