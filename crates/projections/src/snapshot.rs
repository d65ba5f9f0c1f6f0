//! Snapshots: the read models saved with the feed position they reflect, so a restart loads
//! them and catches up instead of folding the whole feed again.
//!
//! Format (version 3), little-endian:
//!
//! ```text
//! magic    8 bytes  "REGSNAP\0"
//! format   u32      1
//! position u64 u64  the checkpoint: the feed position of the last event folded in
//! events   u64      how many events were folded in
//! length   u64      length of the body
//! crc32    u32      CRC-32 of the body
//! body              four sections, each a u64 length and its bytes: the holding
//!                   versions, the offices' lists of them and the legal bases' rows (fixed-
//!                   width records); the persons (records); names and bases' texts
//!                   (MessagePack); the rest of the projection (MessagePack)
//!                   (decoded side by side; dates as day numbers; lookups derived from the
//!                   rows are left out and rebuilt on load)
//! ```
//!
//! A snapshot is written to a temporary file, fsynced and renamed over the old one, so a crash
//! leaves the old snapshot or the new one, never half of one. Loading checks the magic, the
//! format version, the length and the checksum; any failure is an error and the caller rebuilds
//! from the feed: a corrupt snapshot never gives a wrong answer. A snapshot ahead of the store
//! (its position is past the store's head, say after the store was restored from a backup) is
//! stale: the caller must compare [`Checkpoint`] with the store's head and rebuild.

use std::io::{Read, Write};
use std::path::Path;

use thiserror::Error;

use crate::records::{get_all, put_all, Damaged, In, Out};
use crate::Projection;

const MAGIC: &[u8; 8] = b"REGSNAP\0";
const FORMAT: u32 = 5;
const HEADER: usize = 8 + 4 + 8 + 8 + 8 + 8 + 4;

/// The feed position a snapshot reflects (the event store's two-part position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Checkpoint {
    /// The major part of the position.
    pub commit: u64,
    /// The minor part of the position.
    pub prepare: u64,
}

/// Why a snapshot could not be used. Every case means: rebuild from the feed.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("snapshot i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a snapshot.
    #[error("not a registry snapshot (bad magic)")]
    BadMagic,
    /// The file was written in a format this program does not read.
    #[error("snapshot format {0} is not supported (this program reads format {FORMAT})")]
    UnsupportedFormat(u32),
    /// The file is shorter than its header says.
    #[error("snapshot truncated: expected {expected} bytes of body, found {found}")]
    Truncated {
        /// The length in the header.
        expected: u64,
        /// What the file holds.
        found: u64,
    },
    /// The body does not match its checksum.
    #[error("snapshot checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the body read.
        computed: u32,
    },
    /// The body could not be encoded or decoded.
    #[error("snapshot body: {0}")]
    Body(String),
}

/// What a loaded snapshot holds.
pub struct Loaded {
    /// The read models.
    pub projection: Projection,
    /// The feed position they reflect.
    pub checkpoint: Checkpoint,
}

/// Saves the projection with its checkpoint, atomically (temporary file, fsync, rename).
pub fn save(
    projection: &Projection,
    checkpoint: Checkpoint,
    path: &Path,
) -> Result<(), SnapshotError> {
    let body = encode(projection)?;
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT.to_le_bytes());
    header.extend_from_slice(&checkpoint.commit.to_le_bytes());
    header.extend_from_slice(&checkpoint.prepare.to_le_bytes());
    header.extend_from_slice(&projection.applied.to_le_bytes());
    header.extend_from_slice(&(body.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&header)?;
        file.write_all(&body)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn body_error(e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Body(e.to_string())
}

/// The body: four sections, each its length (u64) and its bytes, encoded and decoded side by
/// side on two threads: the holding versions, the offices' lists of them and the legal bases'
/// rows, as fixed-width records (`records`); the persons, as records; the name index and the
/// bases' texts, as MessagePack with structs as arrays; the rest of the projection, as
/// MessagePack with structs as maps (the domain's tagged enums need their field names).
fn encode(projection: &Projection) -> Result<Vec<u8>, SnapshotError> {
    let (holdings, persons, texts, rest) = std::thread::scope(|scope| {
        let holdings = scope.spawn(|| {
            let mut out = Out::default();
            put_all(&projection.versions, &mut out);
            // The layout of a list of lists of slots, without gathering them into one.
            out.len(projection.offices.len());
            for office in &projection.offices {
                put_all(&office.holdings, &mut out);
            }
            put_all(&projection.bases.rows, &mut out);
            out.0
        });
        let mut persons = Out::default();
        put_all(&projection.persons, &mut persons);
        let texts = rmp_serde::to_vec(&(&projection.names, &projection.bases));
        let rest = rmp_serde::to_vec_named(projection);
        let holdings = holdings
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (holdings, persons.0, texts, rest)
    });
    let mut body = Vec::new();
    for section in [
        holdings,
        persons,
        texts.map_err(body_error)?,
        rest.map_err(body_error)?,
    ] {
        body.extend_from_slice(&(section.len() as u64).to_le_bytes());
        body.extend_from_slice(&section);
    }
    Ok(body)
}

type Holdings = (
    Vec<crate::HoldingVersion>,
    Vec<Vec<crate::Slot>>,
    Vec<crate::BasisRow>,
);

/// Reads a section of records with `read`, which must use it up.
fn records<T>(
    section: &[u8],
    read: impl FnOnce(&mut In<'_>) -> Result<T, Damaged>,
) -> Result<T, Damaged> {
    let mut input = In(section);
    let rows = read(&mut input)?;
    if !input.finished() {
        return Err(Damaged("bytes after the last record"));
    }
    Ok(rows)
}

fn decode(body: &[u8]) -> Result<Projection, SnapshotError> {
    let mut sections = Vec::new();
    let mut at = 0;
    for _ in 0..4 {
        let length = body
            .get(at..at + 8)
            .map(|_| u64_at(body, at) as usize)
            .ok_or_else(|| body_error("section header past the end of the body"))?;
        let section = body
            .get(at + 8..(at + 8).saturating_add(length))
            .ok_or_else(|| body_error("section past the end of the body"))?;
        sections.push(section);
        at += 8 + length;
    }
    if at != body.len() {
        return Err(body_error("bytes after the last section"));
    }
    type Texts = (crate::NameIndex<u32>, crate::Bases);
    let (holdings, persons, texts, rest) = std::thread::scope(|scope| {
        let holdings = scope.spawn(|| {
            records(sections[0], |input| -> Result<Holdings, Damaged> {
                Ok((get_all(input)?, get_all(input)?, get_all(input)?))
            })
        });
        let persons = records(sections[1], get_all::<crate::PersonRow>);
        let texts = rmp_serde::from_slice::<Texts>(sections[2]);
        let rest = rmp_serde::from_slice::<Projection>(sections[3]);
        let holdings = holdings
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (holdings, persons, texts, rest)
    });
    let damaged = |e: Damaged| body_error(e.0);
    let mut projection = rest.map_err(body_error)?;
    let (versions, lists, basis_rows) = holdings.map_err(damaged)?;
    if lists.len() != projection.offices.len() {
        return Err(body_error("office lists do not match the offices"));
    }
    for (office, list) in projection.offices.iter_mut().zip(lists) {
        office.holdings = list;
    }
    projection.versions = versions;
    projection.persons = persons.map_err(damaged)?;
    (projection.names, projection.bases) = texts.map_err(body_error)?;
    projection.bases.rows = basis_rows;
    projection.restore_lookups();
    Ok(projection)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Loads a snapshot, checking everything that can be checked.
pub fn load(path: &Path) -> Result<Loaded, SnapshotError> {
    let mut file = std::fs::File::open(path)?;
    let mut header = [0u8; HEADER];
    let mut read = 0;
    while read < HEADER {
        let n = file.read(&mut header[read..])?;
        if n == 0 {
            return Err(if read >= 8 && &header[..8] == MAGIC {
                SnapshotError::Truncated {
                    expected: HEADER as u64,
                    found: read as u64,
                }
            } else {
                SnapshotError::BadMagic
            });
        }
        read += n;
    }
    if &header[..8] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let format = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if format != FORMAT {
        return Err(SnapshotError::UnsupportedFormat(format));
    }
    let checkpoint = Checkpoint {
        commit: u64_at(&header, 12),
        prepare: u64_at(&header, 20),
    };
    let length = u64_at(&header, 36);
    let stored = u32::from_le_bytes([header[44], header[45], header[46], header[47]]);
    let mut body = Vec::with_capacity(length.min(1 << 34) as usize);
    file.take(length).read_to_end(&mut body)?;
    if (body.len() as u64) < length {
        return Err(SnapshotError::Truncated {
            expected: length,
            found: body.len() as u64,
        });
    }
    let computed = crc32fast::hash(&body);
    if computed != stored {
        return Err(SnapshotError::Checksum { stored, computed });
    }
    let projection = decode(&body)?;
    Ok(Loaded {
        projection,
        checkpoint,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use registry_domain::{Date, PartialDate};

    #[test]
    fn dates_are_day_numbers_in_snapshots() {
        for text in ["2024-03-18", "2024-03", "2024", "1945-09-02"] {
            let date: PartialDate = text.parse().unwrap();
            let bytes = rmp_serde::to_vec(&date).unwrap();
            assert!(bytes.len() <= 5, "{text} took {} bytes", bytes.len());
            assert_eq!(rmp_serde::from_slice::<PartialDate>(&bytes).unwrap(), date);
            let day = date.earliest();
            let bytes = rmp_serde::to_vec(&day).unwrap();
            assert_eq!(rmp_serde::from_slice::<Date>(&bytes).unwrap(), day);
        }
        // A month that does not start on its first day is refused, not mended.
        let mid_month = Date::from_ymd(2024, 3, 18).unwrap().julian_day() * 4 + 1;
        let bytes = rmp_serde::to_vec(&mid_month).unwrap();
        assert!(rmp_serde::from_slice::<PartialDate>(&bytes).is_err());
        // Events stay readable text.
        let json = serde_json::to_string(&"2024-03".parse::<PartialDate>().unwrap()).unwrap();
        assert_eq!(json, "\"2024-03\"");
    }
}
