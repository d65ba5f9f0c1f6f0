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

impl<'a> Leaf<'a> {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.payload.len());
        self.encode_into(&mut out);
        out
    }

    /// The leaf's hash, encoding into `buffer` (reused from leaf to leaf by a caller hashing
    /// many).
    pub fn hash_with(&self, buffer: &mut Vec<u8>) -> Hash {
        self.encode_into(buffer);
        leaf_hash(buffer)
    }

    /// Writes the canonical bytes into `out`, replacing what it held.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
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
        out.extend_from_slice(SEPARATOR);
        out.extend_from_slice(&self.position.0.to_be_bytes());
        out.extend_from_slice(&self.position.1.to_be_bytes());
        text(out, self.stream);
        out.extend_from_slice(&self.revision.to_be_bytes());
        out.extend_from_slice(&self.id);
        text(out, self.event_type);
        out.extend_from_slice(&self.schema_version.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(self.payload);
        text(out, self.actor);
        optional(out, self.request_id);
        optional(out, self.correlation_id);
        optional(out, self.request_fingerprint);
        out.extend_from_slice(&self.recorded_at.to_be_bytes());
    }

    /// The leaf's hash in the tree.
    pub fn hash(&self) -> Hash {
        leaf_hash(&self.encode())
    }

    /// Reads a leaf's canonical bytes back (what a proof's `leaf` carries), refusing anything
    /// that is not exactly one leaf of this layout.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, LeafError> {
        let mut r = Reader { bytes };
        if r.take(SEPARATOR.len())? != SEPARATOR {
            return Err(LeafError("not a registry.v1.event leaf"));
        }
        let leaf = Leaf {
            position: (r.u64()?, r.u64()?),
            stream: r.text()?,
            revision: r.u64()?,
            id: r.take(16)?.try_into().map_err(|_| LeafError("short id"))?,
            event_type: r.text()?,
            schema_version: u16::from_be_bytes(r.array()?),
            payload: {
                let n = u32::from_be_bytes(r.array()?) as usize;
                r.take(n)?
            },
            actor: r.text()?,
            request_id: r.optional()?,
            correlation_id: r.optional()?,
            request_fingerprint: r.optional()?,
            recorded_at: i64::from_be_bytes(r.array()?),
        };
        if !r.bytes.is_empty() {
            return Err(LeafError("bytes after the leaf"));
        }
        Ok(leaf)
    }
}

/// Why bytes are not a leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a leaf: {0}")]
pub struct LeafError(&'static str);

/// Reads the layout's fields off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LeafError> {
        if self.bytes.len() < n {
            return Err(LeafError("cut short"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LeafError> {
        self.take(N)?.try_into().map_err(|_| LeafError("cut short"))
    }

    fn u64(&mut self) -> Result<u64, LeafError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn text(&mut self) -> Result<&'a str, LeafError> {
        let n = u32::from_be_bytes(self.array()?) as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| LeafError("text is not UTF-8"))
    }

    fn optional(&mut self) -> Result<Option<&'a str>, LeafError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => self.text().map(Some),
            _ => Err(LeafError("an optional field's flag is neither 0 nor 1")),
        }
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
    fn a_leaf_decodes_to_itself_and_nothing_else_decodes() {
        let bytes = sample().encode();
        assert_eq!(Leaf::decode(&bytes), Ok(sample()));
        for cut in 0..bytes.len() {
            assert!(Leaf::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Leaf::decode(&longer).is_err());
        let mut flag = bytes;
        // The fingerprint's flag: before its length (4 bytes), "ab12" and the recorded time.
        let at = flag.len() - 8 - 4 - 4 - 1;
        assert_eq!(flag[at], 1);
        flag[at] = 2;
        assert!(Leaf::decode(&flag).is_err());
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
