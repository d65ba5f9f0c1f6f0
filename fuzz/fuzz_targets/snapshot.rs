//! Snapshot files, well framed (magic, format, kind, stamp, each section's length and
//! checksum, so that the decoders are reached) around sections of any bytes: loading the read
//! models or the writer's state from them is an answer or an error, never a panic, and never an
//! allocation past libFuzzer's limit (`-malloc_limit_mb`).

#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use registry_eventstore::Position;
use registry_projections::snapshot::{self, Kind, Stamp};

/// The file's header as `snapshot::write` makes it (no event folded), without the section
/// count: made once per kind.
fn header(kind: Kind) -> &'static [u8] {
    static HEADERS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    let headers = HEADERS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        [Kind::ReadModels, Kind::Writer].map(|kind| {
            let path = dir.path().join("template.snap");
            let stamp = Stamp {
                position: [0, 0],
                events: 0,
                last_event: uuid::Uuid::nil(),
            };
            snapshot::write(&path, kind, stamp, &[]).expect("a template snapshot");
            let mut bytes = std::fs::read(&path).expect("the template");
            bytes.truncate(bytes.len() - 4);
            bytes
        })
    });
    &headers[usize::from(kind == Kind::Writer)]
}

fuzz_target!(|input: (bool, Vec<Vec<u8>>)| {
    let (writer, sections) = input;
    let kind = if writer {
        Kind::Writer
    } else {
        Kind::ReadModels
    };
    let mut file = header(kind).to_vec();
    file.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    for section in &sections {
        file.extend_from_slice(&(section.len() as u64).to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(section).to_le_bytes());
        file.extend_from_slice(section);
    }
    // In memory where the system offers it: the file is written and read once per input.
    let mut temporary = tempfile::Builder::new()
        .tempfile_in("/dev/shm")
        .or_else(|_| tempfile::NamedTempFile::new())
        .expect("a temporary file");
    temporary.write_all(&file).expect("written");
    if writer {
        let _ = registry_service_core::writer::load_snapshot(temporary.path());
    } else {
        let _ = snapshot::load_models::<Position>(temporary.path());
    }
});
