//! Signed checkpoints in the formats transparency logs share, so that a verifier written for
//! Go's `sumdb/note`, Sigsum or Tessera reads them as well as `regctl` does:
//!
//! - [C2SP signed-note]: a text, a blank line, then one line per signature,
//!   `— <key name> base64(key id ‖ signature)`; Ed25519 keys written
//!   `<name>+<key id hex>+base64(0x01 ‖ public key)` (and `PRIVATE+KEY+…` with the seed).
//! - [C2SP tlog-checkpoint]: the text is the log's origin, its size and its root hash (base64),
//!   one per line; this log adds one extension line, `time <unix seconds>`, when it was signed.
//! - [C2SP tlog-cosignature]: a witness signs `cosignature/v1\ntime <t>\n` followed by the
//!   checkpoint's text, with a key whose id is derived with type byte 0x04.
//!
//! Ed25519 through `aws-lc-rs`, the provider rustls and the token verifier already use here.
//!
//! [C2SP signed-note]: https://c2sp.org/signed-note
//! [C2SP tlog-checkpoint]: https://c2sp.org/tlog-checkpoint
//! [C2SP tlog-cosignature]: https://c2sp.org/tlog-cosignature

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::Hash;

/// The key type byte of an Ed25519 signer of notes.
const ED25519: u8 = 0x01;
/// The key type byte of an Ed25519 cosigner (tlog-cosignature v1).
const COSIGNATURE_V1: u8 = 0x04;
/// What starts every signature line.
const DASH: &str = "— ";
/// Most signature lines read from one note (as `sumdb/note` limits them).
const MAX_SIGNATURES: usize = 100;

/// Why a key, note or checkpoint was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum NoteError {
    /// A key's text is not a key of this format.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A note's text is not a signed note, or its text not a checkpoint.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature by the key the verifier trusts.
    #[error("the note has no signature by {0}")]
    Unsigned(String),
    /// A signature line by the trusted key does not verify.
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
}

/// The 4-byte id of a key: SHA-256 of its name, a newline, its type byte and its public key.
fn key_id(name: &str, kind: u8, public: &[u8]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([kind]);
    hasher.update(public);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Checks a key's (a log's or a witness's) name: not empty, no spaces, no plus signs, no
/// control characters.
pub fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(NoteError::MalformedKey(
            "a key name must be non-empty, without spaces or '+'",
        ));
    }
    Ok(())
}

/// An Ed25519 private key that signs notes: the log's checkpoint key or a witness's key.
pub struct SigningKey {
    name: String,
    id: u32,
    kind: u8,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}+{:08x})", self.name, self.id)
    }
}

impl SigningKey {
    /// A new random key named `name` (its text and the verifier key's text are
    /// [`SigningKey::to_text`] and [`SigningKey::verifier`]).
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| NoteError::MalformedKey("no randomness"))?;
        Self::from_seed(name, ED25519, &seed)
    }

    fn from_seed(name: &str, kind: u8, seed: &[u8]) -> Result<Self, NoteError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| NoteError::MalformedKey("not an Ed25519 seed"))?;
        let id = key_id(name, kind, pair.public_key().as_ref());
        Ok(Self {
            name: name.to_owned(),
            id,
            kind,
            pair,
        })
    }

    /// Reads `PRIVATE+KEY+<name>+<id>+<base64(0x01 ‖ seed)>`, checking the id.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey("a private key starts PRIVATE+KEY+"))?;
        let (name, id, key) = split_key(rest)?;
        if key.first() != Some(&ED25519) || key.len() != 33 {
            return Err(NoteError::MalformedKey("not an Ed25519 private key"));
        }
        let signer = Self::from_seed(name, ED25519, &key[1..])?;
        if signer.id != id {
            return Err(NoteError::MalformedKey("the key id does not match the key"));
        }
        Ok(signer)
    }

    /// The seed the key was made from.
    fn seed(&self) -> Vec<u8> {
        use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
        self.pair
            .seed()
            .and_then(|s| AsBigEndian::<Curve25519SeedBin>::as_be_bytes(&s))
            .map(|s| s.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// The same key used as a witness's cosigning key (type 0x04).
    pub fn as_cosigner(&self) -> Result<Self, NoteError> {
        Self::from_seed(&self.name, COSIGNATURE_V1, &self.seed())
    }

    /// The key's text, `PRIVATE+KEY+…`: what the key file holds.
    pub fn to_text(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(&self.seed());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            key_id(&self.name, ED25519, self.pair.public_key().as_ref()),
            STANDARD.encode(key)
        )
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, to give verifiers.
    pub fn verifier(&self) -> VerifierKey {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.pair.public_key().as_ref());
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            kind: self.kind,
            public,
        }
    }

    /// The signature line of this key over `message`, with `prefix` between the key id and the
    /// signature (a cosignature's timestamp).
    fn line(&self, prefix: &[u8], message: &[u8]) -> String {
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(prefix);
        blob.extend_from_slice(self.pair.sign(message).as_ref());
        format!("{DASH}{} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// Splits `<name>+<id hex>+<base64>`.
fn split_key(text: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::MalformedKey("expected <name>+<id>+<key>"));
    };
    check_name(name)?;
    if id.len() != 8 {
        return Err(NoteError::MalformedKey("the key id is not 8 hex digits"));
    }
    let id = u32::from_str_radix(id, 16)
        .map_err(|_| NoteError::MalformedKey("the key id is not 8 hex digits"))?;
    let key = STANDARD
        .decode(key)
        .map_err(|_| NoteError::MalformedKey("the key is not base64"))?;
    Ok((name, id, key))
}

/// A public key that checks notes: `<name>+<id hex>+base64(type ‖ public key)`, type 0x01 for a
/// log's key and 0x04 for a witness's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    kind: u8,
    public: [u8; 32],
}

impl VerifierKey {
    /// Reads a verifier key, checking its id.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_key(text.trim())?;
        let (kind, public) = match key.split_first() {
            Some((&kind, public))
                if (kind == ED25519 || kind == COSIGNATURE_V1) && public.len() == 32 =>
            {
                (kind, public)
            }
            _ => {
                return Err(NoteError::MalformedKey(
                    "not an Ed25519 (0x01) or cosignature (0x04) key",
                ))
            }
        };
        if key_id(name, kind, public) != id {
            return Err(NoteError::MalformedKey("the key id does not match the key"));
        }
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(public);
        Ok(Self {
            name: name.to_owned(),
            id,
            kind,
            public: bytes,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is a witness's cosigning key.
    pub fn is_cosigner(&self) -> bool {
        self.kind == COSIGNATURE_V1
    }

    /// Whether `signature` is this key's over `message`.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &self.public)
            .verify(message, signature)
            .is_ok()
    }

    /// The signature lines of a note made by this key (its name and id), decoded.
    fn signatures<'a>(&'a self, lines: &'a [Signature]) -> impl Iterator<Item = &'a [u8]> + 'a {
        lines
            .iter()
            .filter(move |s| s.name == self.name && s.id == self.id)
            .map(|s| s.rest.as_slice())
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = vec![self.kind];
        key.extend_from_slice(&self.public);
        write!(f, "{}+{:08x}+{}", self.name, self.id, STANDARD.encode(key))
    }
}

/// One signature line of a note: its key's name and id, and what follows the id.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Signature {
    name: String,
    id: u32,
    rest: Vec<u8>,
}

/// A note split into its text and its signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<Signature>,
}

impl Note {
    /// Splits a signed note: the text up to and with its last newline, a blank line, then
    /// signature lines. Signature lines that cannot be read are refused.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        let (text, lines) = note
            .rsplit_once("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let text = format!("{text}\n");
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed("the text has control characters"));
        }
        let lines = lines
            .strip_suffix('\n')
            .ok_or(NoteError::Malformed("the note does not end with a newline"))?;
        let mut signatures = Vec::new();
        for line in lines.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed("too many signatures"));
            }
            let (name, blob) = line
                .strip_prefix(DASH)
                .and_then(|l| l.split_once(' '))
                .ok_or(NoteError::Malformed(
                    "a signature line is not `— <name> <base64>`",
                ))?;
            let blob = STANDARD
                .decode(blob)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            if blob.len() < 5 {
                return Err(NoteError::Malformed("a signature is too short"));
            }
            signatures.push(Signature {
                name: name.to_owned(),
                id: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
                rest: blob[4..].to_vec(),
            });
        }
        Ok(Self { text, signatures })
    }

    /// The signed text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Checks that `key` signed the text; any one valid signature line by it suffices and an
    /// invalid one is refused.
    pub fn verify(&self, key: &VerifierKey) -> Result<(), NoteError> {
        let mut signed = false;
        for signature in key.signatures(&self.signatures) {
            if !key.verifies(self.text.as_bytes(), signature) {
                return Err(NoteError::BadSignature(key.to_string()));
            }
            signed = true;
        }
        if signed && !key.is_cosigner() {
            Ok(())
        } else {
            Err(NoteError::Unsigned(key.to_string()))
        }
    }

    /// Checks the cosignature by the witness key `key` and answers when the witness signed it
    /// (unix seconds).
    pub fn verify_cosignature(&self, key: &VerifierKey) -> Result<u64, NoteError> {
        let mut time = None;
        for signature in key.signatures(&self.signatures) {
            let (t, sig) = signature.split_at(8.min(signature.len()));
            let t = u64::from_be_bytes(
                t.try_into()
                    .map_err(|_| NoteError::Malformed("a cosignature has no timestamp"))?,
            );
            if !key.verifies(cosigned(t, &self.text).as_bytes(), sig) {
                return Err(NoteError::BadSignature(key.to_string()));
            }
            time = Some(t);
        }
        time.filter(|_| key.is_cosigner())
            .ok_or_else(|| NoteError::Unsigned(key.to_string()))
    }

    /// Takes the signature lines `key` made in `other` (a copy of this note's text that a
    /// witness cosigned), replacing any this note had by that key.
    pub fn adopt(&mut self, other: &Note, key: &VerifierKey) {
        let theirs: Vec<Signature> = other
            .signatures
            .iter()
            .filter(|s| s.name == key.name && s.id == key.id)
            .cloned()
            .collect();
        if theirs.is_empty() {
            return;
        }
        self.signatures
            .retain(|s| s.name != key.name || s.id != key.id);
        self.signatures.extend(theirs);
    }

    /// Adds this key's signature line (a log's or a witness's cosignature at `time`).
    pub fn sign(&mut self, key: &SigningKey, time: u64) {
        let line = if key.kind == COSIGNATURE_V1 {
            key.line(&time.to_be_bytes(), cosigned(time, &self.text).as_bytes())
        } else {
            key.line(&[], self.text.as_bytes())
        };
        let parsed = Self::parse(&format!("x\n\n{line}")).map(|n| n.signatures);
        if let Ok(signatures) = parsed {
            self.signatures
                .retain(|s| s.name != key.name || s.id != key.id);
            self.signatures.extend(signatures);
        }
    }

    /// A new note over `text` (which must end with a newline), signed by `keys`.
    pub fn signed(text: &str, keys: &[SigningKey], time: u64) -> Self {
        let mut note = Self {
            text: text.to_owned(),
            signatures: Vec::new(),
        };
        for key in keys {
            note.sign(key, time);
        }
        note
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.text)?;
        for s in &self.signatures {
            let mut blob = s.id.to_be_bytes().to_vec();
            blob.extend_from_slice(&s.rest);
            writeln!(f, "{DASH}{} {}", s.name, STANDARD.encode(blob))?;
        }
        Ok(())
    }
}

/// What a witness signs: the cosignature header and the checkpoint's text.
fn cosigned(time: u64, text: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

/// A log's state as a checkpoint says it: its origin, size and root, and when it was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (the origin line), such as `registry.example.gov.vn/offices`.
    pub origin: String,
    /// How many leaves.
    pub size: u64,
    /// The root hash of those leaves.
    pub root: Hash,
    /// When it was signed, in unix seconds.
    pub time: u64,
}

impl Checkpoint {
    /// The checkpoint's text: origin, size, base64 root, then the `time` extension line.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root),
            self.time
        )
    }

    /// Reads a checkpoint's text (extension lines other than `time` are ignored).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::Malformed("a checkpoint starts with its origin"))?;
        let size = lines
            .next()
            .filter(|s| !s.starts_with('+') && (s == &"0" || !s.starts_with('0')))
            .and_then(|s| s.parse().ok())
            .ok_or(NoteError::Malformed("the second line is not a tree size"))?;
        let root: Hash = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::Malformed(
                "the third line is not a base64 SHA-256 root",
            ))?;
        let time = lines
            .find_map(|l| l.strip_prefix("time "))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            time,
        })
    }

    /// The checkpoint signed by `keys` (several during a key rotation), as a note's text.
    pub fn sign(&self, keys: &[SigningKey]) -> String {
        Note::signed(&self.text(), keys, self.time).to_string()
    }

    /// Reads a signed checkpoint, checking that `key` signed it and that it is `key`'s log
    /// (the origin is the key's name).
    pub fn open(note: &str, key: &VerifierKey) -> Result<(Self, Note), NoteError> {
        let note = Note::parse(note)?;
        note.verify(key)?;
        let checkpoint = Self::parse(note.text())?;
        if checkpoint.origin != key.name {
            return Err(NoteError::Malformed("the origin is not the key's log"));
        }
        Ok((checkpoint, note))
    }
}

#[cfg(test)]
mod tests;
