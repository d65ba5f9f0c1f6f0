//! Page tokens: any text a client sends as `page_token` is refused or opened without a panic,
//! and a token the service sealed opens to the cursor it was sealed with.

#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_service_core::paging::{Page, Query, Snapshot};

fuzz_target!(|input: (&str, i64, u64, Vec<u64>)| {
    let (token, recorded_until, events, cursor) = input;
    registry_service_core::paging::use_key(vec![7; 32]);
    let query = Query::of("ListThings", &prost_types_like(events));
    let _ = Page::read(query, 10, token, 100, 1000);
    // A token the service made, read back.
    let first = Page::read(query, 10, "", 100, 1000).expect("a first page");
    let now = Snapshot {
        recorded_until,
        events,
    };
    let sealed = first.token(now, Some(&cursor));
    let page = Page::read(query, 10, &sealed, 100, 1000).expect("a token the service sealed");
    let kept = cursor.len().min(4); // A token carries four numbers at most.
    assert_eq!(page.cursor(), &cursor[..kept]);
});

/// A request to stand for the listing (the query is a digest of it).
fn prost_types_like(n: u64) -> registry_proto::v1::ListUnitsRequest {
    registry_proto::v1::ListUnitsRequest {
        date: n.to_string(),
        ..Default::default()
    }
}
