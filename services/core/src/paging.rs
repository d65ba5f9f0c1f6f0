//! Pagination of list RPCs (AIP-158): `page_size` with a default and a cap, and `page_token`,
//! opaque to callers and authenticated.
//!
//! A token carries where the next page starts (the listing's cursor: an offset, or a part, row
//! and skip of the irregularities) and the state of the read models the listing's first page
//! was answered at ([`Snapshot`]); an HMAC-SHA-256 over those and the request's query (the
//! request with its paging fields and `min_position` cleared: [`Query`]) seals it. A made-up,
//! altered or foreign token (from another query, or another key) is INVALID_ARGUMENT naming
//! `page_token`. Later pages answer as of the first page's snapshot: as known at its last
//! recorded instant, and over the events folded then, so a listing neither skips nor repeats a
//! row while writes arrive.
//!
//! The key is the process's ([`use_key`]); replicas that share a key honour each other's
//! tokens, a process without one draws a random key at start.

use std::sync::OnceLock;

use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The token format's version, its first byte.
const VERSION: u8 = 1;

/// Bytes of the MAC kept in a token (128 bits).
const MAC_BYTES: usize = 16;

/// The most cursor numbers a token holds.
const MAX_CURSOR: usize = 4;

static KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Makes `key` the process's page-token key. The first call wins; later calls (and a key drawn
/// at random before) leave it as it is. Returns whether `key` is now the key.
pub fn use_key(key: Vec<u8>) -> bool {
    let wanted = key.clone();
    *KEY.get_or_init(|| key) == wanted
}

/// The process's key: the one given to [`use_key`], else 32 random bytes drawn once.
fn key() -> &'static [u8] {
    KEY.get_or_init(|| random_key().unwrap_or_else(|e| panic!("no key can seal page tokens: {e}")))
}

/// 32 bytes from the operating system's generator (through the TLS crypto provider).
pub fn random_key() -> Result<Vec<u8>, String> {
    let mut key = vec![0u8; 32];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut key)
        .map_err(|_| "the system's random generator failed".to_owned())?;
    Ok(key)
}

/// The query a listing answers: the digest of the RPC's name and its request with the paging
/// fields and `min_position` cleared (the caller clears them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query([u8; 32]);

impl Query {
    /// The query of `request` (paging fields cleared) to `rpc`.
    pub fn of(rpc: &str, request: &impl prost::Message) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(rpc.as_bytes());
        hasher.update([0]);
        hasher.update(request.encode_to_vec());
        Self(hasher.finalize().into())
    }
}

/// The state of the read models a listing's first page was answered at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The latest recorded instant folded (microseconds since the Unix epoch).
    pub recorded_until: i64,
    /// How many events of the registry stream were folded.
    pub events: u64,
}

impl Snapshot {
    /// Where `models` stand now.
    pub fn of(models: &crate::ReadModels) -> Self {
        Self {
            recorded_until: models.audit.latest_recorded(),
            events: models.events,
        }
    }
}

/// One page of a listing: how many items at most, where it starts, and the snapshot of the
/// listing (none on the first page: it is answered from the models as they are).
#[derive(Clone, Debug)]
pub struct Page {
    /// The most items.
    pub size: usize,
    cursor: Vec<u64>,
    snapshot: Option<Snapshot>,
    query: Query,
}

impl Page {
    /// Reads `page_size` (0 for `default`, capped at `max`, never negative) and `page_token`
    /// (empty for the first page), which must be a token this service gave for `query`.
    pub fn read(
        query: Query,
        page_size: i32,
        page_token: &str,
        default: usize,
        max: usize,
    ) -> Result<Self, ApiError> {
        let size = page_size_of(page_size, default, max)?;
        let mut page = Self {
            size,
            cursor: Vec::new(),
            snapshot: None,
            query,
        };
        if !page_token.is_empty() {
            let (snapshot, cursor) = open(&query, page_token)?;
            page.snapshot = Some(snapshot);
            page.cursor = cursor;
        }
        Ok(page)
    }

    /// Where the page starts, as the listing wrote it in [`Page::token`]; empty on the first.
    pub fn cursor(&self) -> &[u64] {
        &self.cursor
    }

    /// The offset of the first item, for listings whose cursor is an offset.
    pub fn from(&self) -> usize {
        self.cursor
            .first()
            .map_or(0, |n| usize::try_from(*n).unwrap_or(usize::MAX))
    }

    /// The recorded instant to answer at: the request's `known_at`, but never later than the
    /// listing's first page.
    pub fn known_at(&self, requested: Option<i64>) -> Option<i64> {
        match (self.snapshot, requested) {
            (None, requested) => requested,
            (Some(s), None) => Some(s.recorded_until),
            (Some(s), Some(t)) => Some(t.min(s.recorded_until)),
        }
    }

    /// How many events of the stream the listing sees: those folded at its first page.
    pub fn events(&self, now: Snapshot) -> u64 {
        self.snapshot.map_or(now.events, |s| s.events)
    }

    /// The token of the page that starts at `next` (empty when there is none), for the
    /// listing's snapshot (`now` on its first page).
    pub fn token(&self, now: Snapshot, next: Option<&[u64]>) -> String {
        let Some(next) = next else {
            return String::new();
        };
        seal(&self.query, self.snapshot.unwrap_or(now), next)
    }

    /// [`Page::token`] for listings whose cursor is an offset.
    pub fn offset_token(&self, now: Snapshot, next: Option<usize>) -> String {
        self.token(now, next.map(|n| [n as u64]).as_ref().map(|n| &n[..]))
    }

    /// This page of `items` (the whole listing as of its snapshot), and the next page's token.
    pub fn of<T>(&self, mut items: Vec<T>, now: Snapshot) -> (Vec<T>, String) {
        let from = self.from();
        let mut page = items.split_off(from.min(items.len()));
        let next = (page.len() > self.size).then_some(from + self.size);
        page.truncate(self.size);
        (page, self.offset_token(now, next))
    }
}

/// A request's `page_size`: 0 for `default`, capped at `max`, never negative.
pub fn page_size_of(page_size: i32, default: usize, max: usize) -> Result<usize, ApiError> {
    match page_size {
        n if n < 0 => Err(ApiError::invalid("page_size", format!("{n} is negative"))),
        0 => Ok(default),
        n => Ok((n as usize).min(max)),
    }
}

/// The [`Page`] of a list request (a message with `page_size` and `page_token`): its query is
/// the request with those fields, and any named after `clear`, set to their defaults.
///
/// `page!("ListUnits", request, 1000, 10_000, clear min_position)`
#[macro_export]
macro_rules! page {
    ($rpc:expr, $request:expr, $default:expr, $max:expr $(, clear $field:ident)*) => {{
        let request = &$request;
        let mut query = request.clone();
        query.page_size = 0;
        query.page_token = ::std::string::String::new();
        $( query.$field = ::std::default::Default::default(); )*
        $crate::paging::Page::read(
            $crate::paging::Query::of($rpc, &query),
            request.page_size,
            &request.page_token,
            $default,
            $max,
        )
    }};
}

fn mac(query: &Query, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key()).unwrap_or_else(|_| {
        // HMAC takes a key of any length.
        unreachable!("HMAC refused a key")
    });
    mac.update(&query.0);
    mac.update(body);
    mac
}

/// The token of `cursor` in the listing `query` at `snapshot`.
fn seal(query: &Query, snapshot: Snapshot, cursor: &[u64]) -> String {
    let mut body = Vec::with_capacity(18 + 8 * cursor.len() + MAC_BYTES);
    body.push(VERSION);
    body.extend_from_slice(&snapshot.recorded_until.to_be_bytes());
    body.extend_from_slice(&snapshot.events.to_be_bytes());
    body.push(cursor.len().min(MAX_CURSOR) as u8);
    for n in cursor.iter().take(MAX_CURSOR) {
        body.extend_from_slice(&n.to_be_bytes());
    }
    let tag = mac(query, &body).finalize().into_bytes();
    body.extend_from_slice(&tag[..MAC_BYTES]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body)
}

/// The snapshot and cursor of a token this service gave for `query`.
fn open(query: &Query, token: &str) -> Result<(Snapshot, Vec<u64>), ApiError> {
    let refused = || {
        ApiError::invalid(
            "page_token",
            "is not a token this service gave for this request (a token is valid only with the \
             same request, page_size and min_position aside)",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| refused())?;
    if bytes.len() < 18 + MAC_BYTES {
        return Err(refused());
    }
    let (body, tag) = bytes.split_at(bytes.len() - MAC_BYTES);
    mac(query, body)
        .verify_truncated_left(tag)
        .map_err(|_| refused())?;
    // Sealed by this key: the layout is the one `seal` wrote.
    let number = |at: usize| -> Result<[u8; 8], ApiError> {
        body.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(refused)
    };
    if body[0] != VERSION {
        return Err(refused());
    }
    let snapshot = Snapshot {
        recorded_until: i64::from_be_bytes(number(1)?),
        events: u64::from_be_bytes(number(9)?),
    };
    let count = usize::from(body[17]);
    let cursor = (0..count)
        .map(|i| number(18 + 8 * i).map(u64::from_be_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((snapshot, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str) -> Query {
        Query::of(
            "ListThings",
            &prost_types::Timestamp {
                seconds: name.len() as i64,
                nanos: 0,
            },
        )
    }

    const NOW: Snapshot = Snapshot {
        recorded_until: 1_700_000_000_000_000,
        events: 42,
    };

    #[test]
    fn pages_cover_every_item_once_at_the_first_pages_snapshot() {
        let items: Vec<u32> = (0..25).collect();
        let mut seen = Vec::new();
        let mut next = String::new();
        let mut later = NOW;
        loop {
            let page =
                Page::read(query("a"), 10, &next, 100, 1000).unwrap_or_else(|e| panic!("{e}"));
            if !next.is_empty() {
                assert_eq!(page.known_at(None), Some(NOW.recorded_until));
                assert_eq!(page.known_at(Some(5)), Some(5));
                assert_eq!(page.events(later), NOW.events);
            }
            let (chunk, token) = page.of(items.clone(), later);
            seen.extend(chunk);
            if token.is_empty() {
                break;
            }
            next = token;
            // Writes arrive between pages: the listing stays at its first snapshot.
            later.events += 5;
            later.recorded_until += 1_000;
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn made_up_altered_and_foreign_tokens_are_refused() {
        let page = Page::read(query("a"), 10, "", 100, 1000).unwrap_or_else(|e| panic!("{e}"));
        let token = page.token(NOW, Some(&[10]));
        let refused = |token: &str, q: Query| match Page::read(q, 10, token, 100, 1000) {
            Err(ApiError::Invalid { field, .. }) => field == "page_token",
            _ => false,
        };
        assert!(!refused(&token, query("a")));
        assert!(refused("10", query("a")), "a bare offset");
        assert!(refused("x", query("a")));
        assert!(refused(&token, query("bb")), "another query's token");
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token)
            .unwrap_or_default();
        bytes[20] ^= 1;
        let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert!(refused(&altered, query("a")), "an altered offset");
        assert!(Page::read(query("a"), -1, "", 100, 1000).is_err());
    }
}
