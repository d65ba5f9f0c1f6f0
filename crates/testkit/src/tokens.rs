//! A test identity provider: an Ed25519 key, its JWKS document, and tokens it signs. Tests of
//! bearer tokens sign with it what a ministry's provider would.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// The issuer tokens name by default.
pub const ISSUER: &str = "https://id.example.gov";
/// The audience tokens name by default.
pub const AUDIENCE: &str = "registry";

/// A signing key with its key id.
pub struct Issuer {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

/// What a token says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Claims {
    /// The subject: the caller's name.
    pub sub: String,
    /// The issuer.
    pub iss: String,
    /// The audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Claims {
    /// A token for `subject` from [`ISSUER`] to [`AUDIENCE`], valid for an hour.
    pub fn for_subject(subject: &str) -> Self {
        Self {
            sub: subject.to_owned(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: now() + 3600,
            nbf: None,
        }
    }
}

impl Issuer {
    /// A new random key named `kid`.
    #[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
    pub fn new(kid: &str) -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The JWKS document holding this key's public half.
    pub fn jwks(&self) -> String {
        Self::jwks_of(&[self])
    }

    /// A JWKS document holding the public halves of `issuers`.
    pub fn jwks_of(issuers: &[&Issuer]) -> String {
        let keys: Vec<serde_json::Value> = issuers
            .iter()
            .map(|i| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": i.kid,
                    "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&i.public),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// A token saying `claims`, signed with this key.
    #[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }

    /// A valid token for `subject`.
    pub fn token(&self, subject: &str) -> String {
        self.sign(&Claims::for_subject(subject))
    }
}
