//! The canonical encoding of a stored event as a leaf of the log: everything the store keeps of
//! it, in one fixed byte layout, so that changing any of it changes the leaf's hash.
//!
//! Layout (integers big-endian; `str` is a u32 length then its UTF-8 bytes; `opt` is a byte 0
//! for none, or 1 then a `str`):
//!
//! ```text
//! "registry.v1.event"            the domain separator, 17 bytes
//! u64 position.commit, u64 position.prepare
//! str stream, u64 revision, [u8; 16] id
//! str event_type, u16 schema_version
//! u32 payload length, payload bytes as stored
//! str actor, opt request_id, opt correlation_id, opt request_fingerprint
//! i64 recorded_at (microseconds since the Unix epoch, UTC)
//! ```
//!
//! The layout is versioned by its separator: a later one gets a new separator and old leaves
//! keep theirs.

use crate::merkle::{leaf_hash, Hash};

/// The first bytes of every leaf of this layout.
pub const SEPARATOR: &[u8; 17] = b"registry.v1.event";

/// A stored event, as the log hashes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf<'a> {
    /// Its place in the feed: (commit, prepare).
    pub position: (u64, u64),
    /// Its stream.
    pub stream: &'a str,
    /// Its revision in the stream.
    pub revision: u64,
    /// Its id (a UUID's 16 bytes).
    pub id: [u8; 16],
    /// Its type name.
    pub event_type: &'a str,
    /// Its schema version.
    pub schema_version: u16,
    /// Its payload, as stored.
    pub payload: &'a [u8],
    /// Who recorded it.
    pub actor: &'a str,
    /// The request that produced it.
    pub request_id: Option<&'a str>,
    /// The wider operation.
    pub correlation_id: Option<&'a str>,
    /// The request's fingerprint.
    pub request_fingerprint: Option<&'a str>,
    /// When the store committed it (µs since the Unix epoch).
    pub recorded_at: i64,
}

impl Leaf<'_> {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        let optional = |out: &mut Vec<u8>, s: Option<&str>| match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                text(out, s);
            }
        };
        let mut out = Vec::with_capacity(128 + self.payload.len());
        out.extend_from_slice(SEPARATOR);
        out.extend_from_slice(&self.position.0.to_be_bytes());
        out.extend_from_slice(&self.position.1.to_be_bytes());
        text(&mut out, self.stream);
        out.extend_from_slice(&self.revision.to_be_bytes());
        out.extend_from_slice(&self.id);
        text(&mut out, self.event_type);
        out.extend_from_slice(&self.schema_version.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(self.payload);
        text(&mut out, self.actor);
        optional(&mut out, self.request_id);
        optional(&mut out, self.correlation_id);
        optional(&mut out, self.request_fingerprint);
        out.extend_from_slice(&self.recorded_at.to_be_bytes());
        out
    }

    /// The leaf's hash in the tree.
    pub fn hash(&self) -> Hash {
        leaf_hash(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Leaf<'static> {
        Leaf {
            position: (42, 42),
            stream: "registry",
            revision: 41,
            id: *b"0123456789abcdef",
            event_type: "HoldingStarted",
            schema_version: 1,
            payload: br#"{"holding":"h"}"#,
            actor: "registrar@quangninh",
            request_id: Some("7f9c"),
            correlation_id: None,
            request_fingerprint: Some("ab12"),
            recorded_at: 1_733_472_000_000_000,
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let bytes = sample().encode();
        let hex: String = sample().hash().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&bytes[..17], SEPARATOR);
        assert_eq!(&bytes[17..25], &42u64.to_be_bytes());
        assert_eq!(&bytes[33..37], &8u32.to_be_bytes());
        assert_eq!(&bytes[37..45], b"registry");
        assert_eq!(
            bytes.len(),
            17 + 16 + 12 + 8 + 16 + 18 + 2 + 19 + 23 + 9 + 1 + 9 + 8
        );
        // A leaf's hash never changes for the same event: old logs stay verifiable. (Computed
        // apart, from the layout above, with Python's struct and hashlib.)
        assert_eq!(
            hex,
            "0a98f927eebc6d1d439a49981dc8bef5cbaba6f08871d49da4afe4c287cc6730"
        );
    }

    #[test]
    fn changing_anything_changes_the_hash() {
        let base = sample();
        let hash = base.hash();
        let variants = [
            Leaf {
                position: (43, 42),
                ..base
            },
            Leaf {
                position: (42, 43),
                ..base
            },
            Leaf {
                stream: "registrx",
                ..base
            },
            Leaf {
                revision: 40,
                ..base
            },
            Leaf {
                id: *b"0123456789abcdeg",
                ..base
            },
            Leaf {
                event_type: "HoldingEnded",
                ..base
            },
            Leaf {
                schema_version: 2,
                ..base
            },
            Leaf {
                payload: br#"{"holding":"i"}"#,
                ..base
            },
            Leaf {
                actor: "registrar@hanoi",
                ..base
            },
            Leaf {
                request_id: None,
                ..base
            },
            Leaf {
                correlation_id: Some(""),
                ..base
            },
            Leaf {
                request_fingerprint: Some("ab13"),
                ..base
            },
            Leaf {
                recorded_at: base.recorded_at + 1,
                ..base
            },
            // Bytes moved between neighbouring fields: the lengths keep them apart.
            Leaf {
                request_id: Some("7f9"),
                correlation_id: Some("c"),
                ..base
            },
        ];
        for variant in variants {
            assert_ne!(variant.hash(), hash, "{variant:?}");
        }
    }
}
