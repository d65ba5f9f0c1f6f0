//! Snapshots: state folded from the feed saved with the feed position it reflects, so a start
//! loads it and catches up instead of folding the whole feed again.
//!
//! One file format for every kind of state (the read models here; the writer's state in the
//! service core), version 6, little-endian:
//!
//! ```text
//! magic     8 bytes  "REGSNAP\0"
//! format    u32      6
//! kind      u32      what the file holds (`Kind`)
//! position  u64 u64  the feed position of the last event folded in
//! events    u64      how many events of the registry stream were folded in
//! last      16 bytes the id of the last of them (nil when none): a snapshot of another store
//!                    at the same length does not match it
//! sections  u32      their count, then for each: its length (u64), its CRC-32 (u32), its bytes
//! ```
//!
//! A snapshot is written to a temporary file, fsynced and renamed, so a crash leaves the old
//! snapshot or the new one, never half of one. Loading checks the magic, the format, the kind,
//! every length and every checksum, then each record as it is decoded: any failure is an error
//! and the caller tries an older snapshot or folds the feed, so a damaged snapshot never gives
//! a wrong answer. Whether a snapshot belongs to the store at hand (its last event is the
//! store's event at that revision) is the caller's check, against [`Stamp`].
//!
//! The read models' sections: the holding versions, the offices' lists of them and the legal
//! bases' rows (fixed-width records); the persons (records); names and bases' texts
//! (MessagePack); the rest of the projection (MessagePack); the auditors' index (records).
//! Lookups derived from rows are left out and rebuilt on load.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;
use uuid::Uuid;

use crate::read_models::{AuditIndex, FeedPosition, PartiesFrom, ReadModels};
use crate::records::{get_all, put_all, Damaged, In, Out};
use crate::Projection;

const MAGIC: &[u8; 8] = b"REGSNAP\0";
const FORMAT: u32 = 7;
const HEADER: usize = 8 + 4 + 4 + 16 + 8 + 16 + 4;

/// What a snapshot file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A replica's read models ([`ReadModels`]).
    ReadModels = 1,
    /// The writer's state (the domain's registry and the answers to request ids).
    Writer = 2,
}

impl Kind {
    /// Its name, which starts its files' names (`read-models`, `writer`).
    pub fn name(self) -> &'static str {
        self.prefix()
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::ReadModels => "read-models",
            Kind::Writer => "writer",
        }
    }
}

/// Where in the feed a snapshot stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The feed position of the last event folded in.
    pub position: [u64; 2],
    /// How many events of the registry stream were folded in.
    pub events: u64,
    /// The id of the last of them (nil when none).
    pub last_event: Uuid,
}

/// Why a snapshot could not be used. Every case means: use an older one, or fold the feed.
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
    /// The file holds another kind of state.
    #[error("the snapshot holds state of kind {found}, not {expected:?}")]
    OtherKind {
        /// The kind asked for.
        expected: Kind,
        /// The kind in the file.
        found: u32,
    },
    /// The file is shorter than its header says.
    #[error("snapshot truncated: expected {expected} more bytes, found {found}")]
    Truncated {
        /// The length the header gives.
        expected: u64,
        /// What the file holds.
        found: u64,
    },
    /// A section does not match its checksum.
    #[error("snapshot section {section} checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    Checksum {
        /// Which section.
        section: usize,
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// A section could not be encoded or decoded.
    #[error("snapshot body: {0}")]
    Body(String),
}

/// Writes a snapshot file of `kind` atomically (temporary file, fsync, rename, fsync of the
/// directory).
pub fn write(
    path: &Path,
    kind: Kind,
    stamp: Stamp,
    sections: &[Vec<u8>],
) -> Result<(), SnapshotError> {
    let mut header = Vec::with_capacity(HEADER + 12 * sections.len());
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT.to_le_bytes());
    header.extend_from_slice(&(kind as u32).to_le_bytes());
    for word in [stamp.position[0], stamp.position[1], stamp.events] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    header.extend_from_slice(stamp.last_event.as_bytes());
    header.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    let temporary = path.with_extension("tmp");
    let written = (|| -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&temporary)?);
        file.write_all(&header)?;
        #[cfg(feature = "failpoints")]
        fail::fail_point!("snapshot.write", |_| Err(std::io::Error::from(
            std::io::ErrorKind::StorageFull
        )));
        for section in sections {
            file.write_all(&(section.len() as u64).to_le_bytes())?;
            file.write_all(&crc32fast::hash(section).to_le_bytes())?;
            file.write_all(section)?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        // A full disk must not keep the half-written file (a retry would find less room).
        let _ = std::fs::remove_file(&temporary);
        return Err(e.into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A snapshot file whose header and section frames were read and checked: its stamp and where
/// each section lies, to read one at a time ([`Sections::read`]), so that a load holds the
/// bytes of the sections it is decoding, not those of the whole file.
#[derive(Debug)]
pub struct Sections {
    path: PathBuf,
    stamp: Stamp,
    frames: Vec<Frame>,
}

/// A section of a snapshot file as [`Sections::records`] reads it.
pub type SectionReader = std::io::BufReader<Checksummed>;

/// A section's bytes, summed as they are read.
pub struct Checksummed {
    inner: std::io::Take<std::fs::File>,
    hasher: crc32fast::Hasher,
}

impl Read for Checksummed {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..n]);
        Ok(n)
    }
}

#[derive(Debug)]
struct Frame {
    offset: u64,
    length: u64,
    checksum: u32,
}

/// Opens a snapshot file of `kind`: checks its header and that its sections fill it exactly.
pub fn open(path: &Path, kind: Kind) -> Result<Sections, SnapshotError> {
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
    let size = file.get_ref().metadata()?.len();
    let mut header = [0u8; HEADER];
    let read = read_up_to(&mut file, &mut header)?;
    if read < 8 || &header[..8] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    if read < HEADER {
        return Err(SnapshotError::Truncated {
            expected: HEADER as u64,
            found: read as u64,
        });
    }
    let format = u32_at(&header, 8);
    if format != FORMAT {
        return Err(SnapshotError::UnsupportedFormat(format));
    }
    if u32_at(&header, 12) != kind as u32 {
        return Err(SnapshotError::OtherKind {
            expected: kind,
            found: u32_at(&header, 12),
        });
    }
    let mut last = [0u8; 16];
    last.copy_from_slice(&header[40..56]);
    let stamp = Stamp {
        position: [u64_at(&header, 16), u64_at(&header, 24)],
        events: u64_at(&header, 32),
        last_event: Uuid::from_bytes(last),
    };
    let count = u32_at(&header, 56) as usize;
    let mut frames = Vec::with_capacity(count.min(64));
    let mut at = HEADER as u64;
    for _ in 0..count {
        let mut frame = [0u8; 12];
        let got = read_up_to(&mut file, &mut frame)?;
        if got < frame.len() {
            return Err(SnapshotError::Truncated {
                expected: frame.len() as u64,
                found: got as u64,
            });
        }
        at += frame.len() as u64;
        let length = u64_at(&frame, 0);
        let left = size.saturating_sub(at);
        if length > left {
            return Err(SnapshotError::Truncated {
                expected: length,
                found: left,
            });
        }
        frames.push(Frame {
            offset: at,
            length,
            checksum: u32_at(&frame, 8),
        });
        at += length;
        file.seek(std::io::SeekFrom::Start(at))?;
    }
    if at != size {
        return Err(body_error("bytes after the last section"));
    }
    Ok(Sections {
        path: path.to_owned(),
        stamp,
        frames,
    })
}

impl Sections {
    /// The snapshot's stamp.
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// Section `section`'s frame, and the file opened on its bytes.
    fn open_section(
        &self,
        section: usize,
    ) -> Result<(&Frame, std::io::Take<std::fs::File>), SnapshotError> {
        let frame = self
            .frames
            .get(section)
            .ok_or_else(|| body_error(format!("no section {section}")))?;
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(std::io::SeekFrom::Start(frame.offset))?;
        Ok((frame, file.take(frame.length)))
    }

    /// The bytes of section `section`, its checksum checked.
    pub fn read(&self, section: usize) -> Result<Vec<u8>, SnapshotError> {
        let (frame, mut file) = self.open_section(section)?;
        let mut bytes = Vec::with_capacity(frame.length as usize);
        file.read_to_end(&mut bytes)?;
        if (bytes.len() as u64) < frame.length {
            return Err(SnapshotError::Truncated {
                expected: frame.length,
                found: bytes.len() as u64,
            });
        }
        let computed = crc32fast::hash(&bytes);
        if computed != frame.checksum {
            return Err(SnapshotError::Checksum {
                section,
                stored: frame.checksum,
                computed,
            });
        }
        Ok(bytes)
    }

    /// Section `section`, a section of records, decoded with `decode` as it is read from the
    /// file (no copy of the section is held); its checksum is checked once it is read to its
    /// end. `decode` must use the section up. A decoder fed damaged bytes fails, or its rows are
    /// discarded when the checksum then fails: records check every value and every count
    /// against the bytes left.
    pub fn records<T>(
        &self,
        section: usize,
        decode: impl FnOnce(&mut In<SectionReader>) -> Result<T, Damaged>,
    ) -> Result<T, SnapshotError> {
        let (frame, file) = self.open_section(section)?;
        let reader = std::io::BufReader::with_capacity(
            1 << 16,
            Checksummed {
                inner: file,
                hasher: crc32fast::Hasher::new(),
            },
        );
        let mut input = In::new(reader, frame.length);
        let decoded = decode(&mut input);
        let finished = input.finished();
        // The checksum of the whole section, read to its end whatever the decoder did: a
        // damaged section is reported as such rather than as the row it broke.
        let mut reader = input.into_source();
        std::io::copy(&mut reader, &mut std::io::sink())?;
        let checksummed = reader.into_inner();
        if checksummed.inner.limit() > 0 {
            return Err(SnapshotError::Truncated {
                expected: frame.length,
                found: frame.length - checksummed.inner.limit(),
            });
        }
        let computed = checksummed.hasher.finalize();
        if computed != frame.checksum {
            return Err(SnapshotError::Checksum {
                section,
                stored: frame.checksum,
                computed,
            });
        }
        let rows = decoded.map_err(|e| body_error(e.0))?;
        if !finished {
            return Err(body_error("bytes after the last record"));
        }
        Ok(rows)
    }

    /// Checks that the file has the `expected` sections of `what`.
    pub fn expect(&self, expected: usize, what: &str) -> Result<(), SnapshotError> {
        if self.frames.len() == expected {
            Ok(())
        } else {
            Err(body_error(format!(
                "{} sections where {what} has {expected}",
                self.frames.len()
            )))
        }
    }
}

/// Reads into `buffer` until it is full or the file ends; how much was read.
fn read_up_to(file: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut read = 0;
    while read < buffer.len() {
        match file.read(&mut buffer[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read)
}

/// The snapshots of one kind in a directory, as `<kind>-<events>.snap`: the newest first when
/// loading, the last two kept when saving (so a damaged newest one leaves an older one).
#[derive(Clone, Debug)]
pub struct Shelf {
    dir: PathBuf,
    kind: Kind,
}

/// How many snapshots of a kind a shelf keeps.
pub const KEPT: usize = 2;

impl Shelf {
    /// The kind of state it holds.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The snapshots of `kind` in `dir`.
    pub fn new(dir: impl Into<PathBuf>, kind: Kind) -> Self {
        Self {
            dir: dir.into(),
            kind,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a snapshot for `stamp` (creating the directory), then removes all but the newest
    /// [`KEPT`]; the path written.
    pub fn put(&self, stamp: Stamp, sections: &[Vec<u8>]) -> Result<PathBuf, SnapshotError> {
        std::fs::create_dir_all(&self.dir)?;
        // A process killed while writing left its temporary file; only this one writes here.
        let prefix = format!("{}-", self.kind.prefix());
        for entry in std::fs::read_dir(&self.dir)? {
            let left = entry?.path();
            let name = left.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&left);
            }
        }
        let path = self
            .dir
            .join(format!("{}-{:020}.snap", self.kind.prefix(), stamp.events));
        write(&path, self.kind, stamp, sections)?;
        for old in self.newest_first()?.into_iter().skip(KEPT) {
            std::fs::remove_file(old)?;
        }
        Ok(path)
    }

    /// The snapshot files of this kind, the newest (the most events) first.
    pub fn newest_first(&self) -> Result<Vec<PathBuf>, SnapshotError> {
        let prefix = format!("{}-", self.kind.prefix());
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let path = entry?.path();
            let events = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(&prefix)?.strip_suffix(".snap"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(events) = events {
                found.push((events, path));
            }
        }
        found.sort_unstable_by(|a, b| b.cmp(a));
        Ok(found.into_iter().map(|(_, path)| path).collect())
    }
}

/// The read models' sections.
///
/// With `spread`, the sections are encoded on three threads (a stopping process); without, on
/// this one only (a periodic snapshot, which should leave the other core to the writes and
/// queries going on meanwhile).
pub fn encode_models<P: FeedPosition>(
    models: &ReadModels<P>,
    spread: bool,
) -> Result<Vec<Vec<u8>>, SnapshotError> {
    let (projection, audit) = both(
        spread,
        || encode(&models.projection, spread),
        || encode_audit(&models.audit),
    );
    let mut sections = projection?;
    sections.push(audit);
    Ok(sections)
}

/// Saves read models on a shelf; the path written.
pub fn save_models<P: FeedPosition>(
    shelf: &Shelf,
    models: &ReadModels<P>,
    last_event: Uuid,
) -> Result<PathBuf, SnapshotError> {
    let stamp = Stamp {
        position: models.position.map_or([0, 0], Into::into),
        events: models.events,
        last_event,
    };
    shelf.put(stamp, &encode_models(models, true)?)
}

/// Loads read models from a snapshot file, checking everything that can be checked.
pub fn load_models<P: FeedPosition>(path: &Path) -> Result<(Stamp, ReadModels<P>), SnapshotError> {
    let sections = open(path, Kind::ReadModels)?;
    sections.expect(5, "the read models")?;
    let stamp = sections.stamp();
    let (projection, audit) = std::thread::scope(|scope| {
        let audit = scope.spawn(|| sections.records(4, decode_audit::<P>));
        let projection = decode(&sections);
        let audit = audit
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (projection, audit)
    });
    let (projection, audit) = (projection?, audit?);
    if projection.applied() != stamp.events || audit.recorded_at.len() as u64 != stamp.events {
        return Err(body_error(format!(
            "the models folded {} and {} events where the snapshot says {}",
            projection.applied(),
            audit.recorded_at.len(),
            stamp.events
        )));
    }
    let models = ReadModels {
        projection,
        audit,
        position: (stamp.events > 0 || stamp.position != [0, 0]).then(|| P::from(stamp.position)),
        events: stamp.events,
    };
    Ok((stamp, models))
}

/// The auditors' index as records: the entities' lists, the corrected holdings' parties, the
/// recorded times and the positions (the running maximum of recorded times is rebuilt).
fn encode_audit<P: FeedPosition>(audit: &AuditIndex<P>) -> Vec<u8> {
    let mut out = Out::default();
    out.len(audit.named.len());
    for (entity, revisions) in &audit.named {
        out.uuid(*entity);
        out.u32(revisions.len() as u32);
        revisions.iter().for_each(|r| out.u32(*r));
    }
    out.len(audit.parties.len());
    for (holding, moves) in &audit.parties {
        out.uuid(*holding);
        out.u32(moves.len() as u32);
        for (from, [person, office]) in moves {
            out.u32(*from);
            out.uuid(*person);
            out.uuid(*office);
        }
    }
    out.len(audit.recorded_at.len());
    for (recorded_at, position) in audit.recorded_at.iter().zip(&audit.positions) {
        let [commit, prepare]: [u64; 2] = (*position).into();
        out.i64(*recorded_at);
        out.i64(commit as i64);
        out.i64(prepare as i64);
    }
    out.0
}

fn decode_audit<P: FeedPosition>(input: &mut In<impl Read>) -> Result<AuditIndex<P>, Damaged> {
    let mut audit = AuditIndex::<P>::default();
    let n = input.len(20)?;
    audit.named.reserve(n);
    for _ in 0..n {
        let entity = input.uuid()?;
        let count = input.count(4)?;
        let mut revisions = smallvec::SmallVec::with_capacity(count);
        for _ in 0..count {
            revisions.push(input.u32()?);
        }
        audit.named.insert(entity, revisions);
    }
    let n = input.len(20)?;
    for _ in 0..n {
        let holding = input.uuid()?;
        let count = input.count(36)?;
        let mut moves: smallvec::SmallVec<[PartiesFrom; 2]> = smallvec::SmallVec::new();
        for _ in 0..count {
            moves.push((input.u32()?, [input.uuid()?, input.uuid()?]));
        }
        audit.parties.insert(holding, moves);
    }
    let n = input.len(24)?;
    audit.recorded_at.reserve_exact(n);
    audit.positions.reserve_exact(n);
    audit.latest_so_far.reserve_exact(n);
    let mut latest = i64::MIN;
    for _ in 0..n {
        let recorded_at = input.i64()?;
        let position = [input.i64()? as u64, input.i64()? as u64];
        latest = latest.max(recorded_at);
        audit.recorded_at.push(recorded_at);
        audit.positions.push(P::from(position));
        audit.latest_so_far.push(latest);
    }
    Ok(audit)
}

/// `first` and `second`, side by side on a thread of their own for `first` when `spread`, else
/// one after the other on this thread.
fn both<A: Send, B>(
    spread: bool,
    first: impl FnOnce() -> A + Send,
    second: impl FnOnce() -> B,
) -> (A, B) {
    if !spread {
        return (first(), second());
    }
    std::thread::scope(|scope| {
        let first = scope.spawn(first);
        let second = second();
        let first = first
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (first, second)
    })
}

fn body_error(e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Body(e.to_string())
}

/// The projection's four sections, encoded and decoded side by side on two threads: the holding versions, the offices' lists of them and the legal bases'
/// rows, as fixed-width records (`records`); the persons, as records; the name index and the
/// bases' texts, as MessagePack with structs as arrays; the rest of the projection, as
/// MessagePack with structs as maps (the domain's tagged enums need their field names).
fn encode(projection: &Projection, spread: bool) -> Result<Vec<Vec<u8>>, SnapshotError> {
    let holdings = || {
        let mut out = Out::default();
        put_all(&projection.versions, &mut out);
        // The layout of a list of lists of slots, without gathering them into one.
        out.len(projection.offices.len());
        for office in &projection.offices {
            put_all(&office.holdings, &mut out);
        }
        put_all(&projection.bases.rows, &mut out);
        out.0
    };
    let rest = || {
        let mut persons = Out::default();
        put_all(&projection.persons, &mut persons);
        let texts = rmp_serde::to_vec(&(&projection.names, &projection.bases));
        let rest = rmp_serde::to_vec_named(projection);
        (persons.0, texts, rest)
    };
    let (holdings, (persons, texts, rest)) = both(spread, holdings, rest);
    Ok(vec![
        holdings,
        persons,
        texts.map_err(body_error)?,
        rest.map_err(body_error)?,
    ])
}

type Holdings = (
    Vec<crate::HoldingVersion>,
    Vec<Vec<crate::Slot>>,
    Vec<crate::BasisRow>,
);

/// The projection from the first four sections, each read when it is decoded and dropped once
/// it is, on two threads.
fn decode(sections: &Sections) -> Result<Projection, SnapshotError> {
    type Texts = (crate::NameIndex<u32>, crate::Bases);
    let (holdings, persons, texts, rest) = std::thread::scope(|scope| {
        let holdings = scope.spawn(|| {
            sections.records(0, |input| -> Result<Holdings, Damaged> {
                Ok((get_all(input)?, get_all(input)?, get_all(input)?))
            })
        });
        let persons = sections.records(1, get_all::<crate::PersonRow>);
        let texts = sections
            .read(2)
            .and_then(|bytes| rmp_serde::from_slice::<Texts>(&bytes).map_err(body_error));
        let rest = sections
            .read(3)
            .and_then(|bytes| rmp_serde::from_slice::<Projection>(&bytes).map_err(body_error));
        let holdings = holdings
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (holdings, persons, texts, rest)
    });
    let mut projection = rest?;
    let (versions, lists, basis_rows) = holdings?;
    if lists.len() != projection.offices.len() {
        return Err(body_error("office lists do not match the offices"));
    }
    for (office, list) in projection.offices.iter_mut().zip(lists) {
        office.holdings = list;
    }
    projection.versions = versions;
    projection.persons = persons?;
    (projection.names, projection.bases) = texts?;
    projection.bases.rows = basis_rows;
    projection.restore_lookups();
    Ok(projection)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
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
