//! `regctl import`'s parsers: any bytes as a CSV or a JSON Lines file (the first byte picks the
//! format and the record type a CSV file is given) are planned into records and problems
//! without a panic, and the same file plans the same way twice (JSON Lines are parsed on two
//! threads and put back in file order).

#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_cli::{plan_import, FileFormat};

const TYPES: [Option<&str>; 8] = [
    None,
    Some("person"),
    Some("unit"),
    Some("office"),
    Some("term"),
    Some("holding"),
    Some("model"),
    Some("adoption"),
];

fuzz_target!(|input: &[u8]| {
    let Some((&choice, file)) = input.split_first() else {
        return;
    };
    let format = if choice & 1 == 0 {
        FileFormat::Csv
    } else {
        FileFormat::Jsonl
    };
    let record = TYPES[usize::from(choice >> 1) % TYPES.len()];
    let first = plan_import(file, format, record).map_err(|e| e.to_string());
    let again = plan_import(file, format, record).map_err(|e| e.to_string());
    assert_eq!(first, again, "the same file planned two ways");
});
