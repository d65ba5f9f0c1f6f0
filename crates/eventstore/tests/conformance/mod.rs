//! The conformance suite every backend passes: generic functions over [`EventStore`], and
//! `conformance_suite!`, which turns them into tests for one backend (in the manner of
//! quickwit's metastore suite).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use registry_eventstore::*;
use uuid::Uuid;

/// A store under test and whatever must live as long as it (a temporary directory, a schema).
pub struct Fixture<S> {
    pub store: S,
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Prints a notice the test harness does not capture (it only captures `print!` and `eprint!`),
/// so a skipped backend is visible in every test run.
pub fn notice(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "NOTICE: {message}");
}

pub fn event(event_type: &str, payload: &[u8]) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload: payload.to_vec(),
        metadata: Metadata {
            actor: "tester".into(),
            request_id: Some(Uuid::now_v7().to_string()),
            correlation_id: None,
            request_fingerprint: Some("4b1d0c3a9e8f7a6b5c4d3e2f1a0b9c8d".into()),
        },
    }
}

fn unique_stream(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::now_v7())
}

/// Waits until the feed's head has reached `position`. A store may publish a committed event to
/// On a store migrated from one without request fingerprints (one event stored before): a new
/// event's fingerprint is stored and read back, the old event has none.
pub async fn fingerprints_after_a_migration<S: EventStore>(store: &S) {
    let mut new = event("New", b"{}");
    new.metadata.request_fingerprint = Some("00ff".into());
    store
        .append("registry", ExpectedRevision::Exact(0), vec![new])
        .await
        .unwrap();
    let events = store
        .read_stream("registry", 0, Direction::Forwards, 10)
        .await
        .unwrap();
    let fingerprints: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.metadata.request_fingerprint.as_deref())
        .collect();
    assert_eq!(fingerprints, [None, Some("00ff")]);
}

/// the feed a little later (PostgreSQL waits for older transactions to end); never out of order.
pub async fn wait_for_feed<S: EventStore>(store: &S, position: Position) -> Option<Position> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let head = store.head().await.unwrap();
        if head >= Some(position) {
            return head;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed did not reach {position} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next_within<S>(subscription: &mut Subscription, _: &S) -> RecordedEvent {
    tokio::time::timeout(Duration::from_secs(30), subscription.next())
        .await
        .expect("subscription stalled for 30 s")
        .expect("subscription closed")
        .expect("subscription failed")
}

pub async fn expected_revision_conflicts<S: EventStore>(store: S) {
    let stream = unique_stream("registry");
    let first = store
        .append(&stream, ExpectedRevision::NoStream, vec![event("A", b"{}")])
        .await
        .unwrap();
    assert_eq!(first.next_expected, 0);
    let head = store.head().await.unwrap();
    match store
        .append(&stream, ExpectedRevision::NoStream, vec![event("A", b"{}")])
        .await
    {
        Err(StoreError::WrongExpectedRevision {
            actual: Some(0), ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let second = store
        .append(
            &stream,
            ExpectedRevision::Exact(0),
            vec![event("B", b"{}"), event("C", b"{}")],
        )
        .await
        .unwrap();
    assert_eq!(second.next_expected, 2);
    assert!(second.position > first.position);
    match store
        .append(&stream, ExpectedRevision::Exact(0), vec![event("D", b"{}")])
        .await
    {
        Err(StoreError::WrongExpectedRevision {
            actual: Some(2),
            expected: ExpectedRevision::Exact(0),
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let missing = unique_stream("missing");
    match store
        .append(
            &missing,
            ExpectedRevision::Exact(5),
            vec![event("D", b"{}")],
        )
        .await
    {
        Err(StoreError::WrongExpectedRevision { actual: None, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let any = store
        .append(&stream, ExpectedRevision::Any, vec![event("E", b"{}")])
        .await
        .unwrap();
    assert_eq!(any.next_expected, 3);
    // The rejected appends left nothing behind.
    let all = store
        .read_stream(&stream, 0, Direction::Forwards, 100)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| &*e.event_type).collect::<Vec<_>>(),
        ["A", "B", "C", "E"]
    );
    assert!(store
        .read_stream(&missing, 0, Direction::Forwards, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(head < wait_for_feed(&store, any.position).await);
}

pub async fn ordering_and_read_your_writes<S: EventStore>(store: S) {
    let start = store.head().await.unwrap();
    let streams: Vec<String> = (0..3).map(|i| unique_stream(&format!("s{i}"))).collect();
    let mut written = Vec::new();
    for round in 0..5u8 {
        for stream in &streams {
            let e = event("Tick", &[round]);
            let id = e.id;
            let result = store
                .append(stream, ExpectedRevision::Any, vec![e])
                .await
                .unwrap();
            // Read your write, at once, from the stream and from the feed.
            let back = store
                .read_stream(stream, result.next_expected, Direction::Forwards, 1)
                .await
                .unwrap();
            assert_eq!(back[0].id, id);
            assert_eq!(
                wait_for_feed(&store, result.position).await,
                Some(result.position)
            );
            written.push((id, result.position));
        }
    }
    let feed = store.read_all(start, 1000).await.unwrap();
    let ours: Vec<&RecordedEvent> = feed
        .iter()
        .filter(|e| streams.iter().any(|s| **s == *e.stream))
        .collect();
    assert_eq!(
        ours.iter().map(|e| (e.id, e.position)).collect::<Vec<_>>(),
        written
    );
    assert!(
        feed.windows(2).all(|w| w[0].position < w[1].position),
        "feed not in position order"
    );
    // Paging through the feed gives the same sequence.
    let mut paged = Vec::new();
    let mut after = start;
    loop {
        let page = store.read_all(after, 4).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().position);
        paged.extend(page.into_iter().map(|e| e.id));
    }
    assert_eq!(paged, feed.iter().map(|e| e.id).collect::<Vec<_>>());
    // Backwards and from a revision.
    let back = store
        .read_stream(&streams[0], 4, Direction::Backwards, 10)
        .await
        .unwrap();
    assert_eq!(
        back.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [4, 3, 2, 1, 0]
    );
    let mid = store
        .read_stream(&streams[0], 2, Direction::Forwards, 2)
        .await
        .unwrap();
    assert_eq!(mid.iter().map(|e| e.revision).collect::<Vec<_>>(), [2, 3]);
    assert!(store
        .read_all(store.head().await.unwrap(), 10)
        .await
        .unwrap()
        .is_empty());
}

/// A new stream of `n` events (returned with their ids) and, after it, another stream of one.
async fn stream_beside_another<S: EventStore>(
    store: &S,
    name: &str,
    n: u8,
) -> (String, String, Vec<Uuid>) {
    let stream = unique_stream(name);
    let other = unique_stream(&format!("{name}-other"));
    let events: Vec<NewEvent> = (0..n).map(|i| event("Tick", &[i])).collect();
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    store
        .append(&stream, ExpectedRevision::NoStream, events)
        .await
        .unwrap();
    store
        .append(
            &other,
            ExpectedRevision::NoStream,
            vec![event("Tock", &[0])],
        )
        .await
        .unwrap();
    (stream, other, ids)
}

pub async fn reads_chosen_revisions_in_order<S: EventStore>(store: S) {
    let (stream, _, ids) = stream_beside_another(&store, "chosen", 20).await;
    // Runs, gaps and a revision the stream does not have.
    let wanted = [0u64, 1, 2, 5, 9, 10, 19, 25];
    let got = store.read_revisions(&stream, &wanted).await.unwrap();
    let revisions: Vec<u64> = got.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, [0, 1, 2, 5, 9, 10, 19]);
    assert!(got
        .iter()
        .all(|e| *e.stream == *stream && e.id == ids[e.revision as usize]));
    assert!(store.read_revisions(&stream, &[]).await.unwrap().is_empty());
}

pub async fn reads_events_seen_at_their_positions<S: EventStore>(store: S) {
    let (stream, other, _) = stream_beside_another(&store, "seen", 12).await;
    let all = store
        .read_stream(&stream, 0, Direction::Forwards, 100)
        .await
        .unwrap();
    let elsewhere = store
        .read_stream(&other, 0, Direction::Forwards, 1)
        .await
        .unwrap()[0]
        .position;
    let at = |r: usize| (all[r].revision, all[r].position);
    // Revision 7 asked for at the other stream's event's position, and a revision the
    // stream does not have: both left out.
    let seen = [
        at(0),
        at(3),
        at(4),
        (7, elsewhere),
        at(11),
        (40, all[5].position),
    ];
    let got = store.read_seen(&stream, &seen).await.unwrap();
    assert_eq!(
        got.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [0, 3, 4, 11]
    );
    for e in &got {
        let expected = &all[e.revision as usize];
        assert_eq!(
            (e.id, e.position, &e.payload),
            (expected.id, expected.position, &expected.payload)
        );
        assert_eq!(*e.stream, *stream);
    }
    // The other stream's event is not read as this stream's.
    assert!(store
        .read_seen(&stream, &[(0, elsewhere)])
        .await
        .unwrap()
        .is_empty());
    assert!(store.read_seen(&stream, &[]).await.unwrap().is_empty());
}

pub async fn large_and_unicode_payloads<S: EventStore>(store: S) {
    let stream = format!(
        "đơn-vị/Xã Cộng Hòa/Nguyễn Thị Kim Phượng/{}",
        Uuid::now_v7()
    );
    let large: Vec<u8> = (0..(512 * 1024)).map(|i| (i % 251) as u8).collect();
    let text = "{\"name\":\"Nguyễn Xuân Ký\",\"title\":\"Bí thư Tỉnh ủy, Chủ tịch HĐND tỉnh\",\"nfd\":\"Nguye\u{302}\u{303}n\"}";
    let mut unicode = event("PersonRegistered", text.as_bytes());
    unicode.metadata.actor = "cán bộ đăng ký".into();
    unicode.metadata.correlation_id = Some("nhập-khẩu/2024".into());
    let big = event("Large", &large);
    store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            vec![unicode.clone(), big.clone()],
        )
        .await
        .unwrap();
    let back = store
        .read_stream(&stream, 0, Direction::Forwards, 10)
        .await
        .unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(&*back[0].stream, stream);
    assert_eq!(back[0].payload, text.as_bytes());
    assert_eq!(back[0].metadata, unicode.metadata);
    assert_eq!(&*back[0].event_type, "PersonRegistered");
    assert_eq!(back[0].schema_version, 1);
    assert_eq!(back[1].payload, large);
    assert_eq!(back[1].id, big.id);
    assert!(
        back[0].recorded_at > 1_700_000_000_000_000,
        "recorded time is in microseconds since 1970"
    );
    assert!(back[0].recorded_at <= back[1].recorded_at);
}

pub async fn bad_appends_are_rejected_and_change_nothing<S: EventStore>(store: S) {
    let stream = unique_stream("bad");
    let ok = store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            vec![event("Ok", b"{}")],
        )
        .await
        .unwrap();
    let head = wait_for_feed(&store, ok.position).await;
    let oversized = event("Huge", &vec![b'x'; DEFAULT_MAX_EVENT_BYTES + 1]);
    match store
        .append(
            &stream,
            ExpectedRevision::Any,
            vec![event("Fine", b"{}"), oversized],
        )
        .await
    {
        Err(StoreError::EventTooLarge {
            index: 1, limit, ..
        }) => assert_eq!(limit, DEFAULT_MAX_EVENT_BYTES),
        other => panic!("expected EventTooLarge, got {other:?}"),
    }
    assert!(matches!(
        store
            .append("", ExpectedRevision::Any, vec![event("X", b"{}")])
            .await,
        Err(StoreError::InvalidStreamName(..))
    ));
    assert!(matches!(
        store
            .append("a\nb", ExpectedRevision::Any, vec![event("X", b"{}")])
            .await,
        Err(StoreError::InvalidStreamName(..))
    ));
    assert!(matches!(
        store
            .append(
                &"x".repeat(600),
                ExpectedRevision::Any,
                vec![event("X", b"{}")]
            )
            .await,
        Err(StoreError::InvalidStreamName(..))
    ));
    assert!(matches!(
        store.append(&stream, ExpectedRevision::Any, vec![]).await,
        Err(StoreError::EmptyAppend)
    ));
    assert_eq!(store.head().await.unwrap(), head);
    assert_eq!(
        store
            .read_stream(&stream, 0, Direction::Forwards, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Every backend: an event id appended again to its stream is never stored twice (KurrentDB
/// deduplicates by event id within a stream, and only there).
pub async fn a_repeated_event_id_is_stored_once_in_its_stream<S: EventStore>(store: S) {
    let stream = unique_stream("dup");
    let e = event("Once", b"{}");
    store
        .append(&stream, ExpectedRevision::NoStream, vec![e.clone()])
        .await
        .unwrap();
    // Either rejected, or (KurrentDB) acknowledged idempotently: never stored twice.
    let _ = store
        .append(&stream, ExpectedRevision::Any, vec![e.clone()])
        .await;
    let _ = store
        .append(&stream, ExpectedRevision::Exact(0), vec![e.clone()])
        .await;
    let all = store.read_all(None, 1_000_000).await.unwrap();
    assert_eq!(all.iter().filter(|r| r.id == e.id).count(), 1);
}

/// The embedded store and PostgreSQL: an event id is unique in the whole store, whatever the
/// stream (not KurrentDB's contract; the registry writes one stream, so it does not rely on it).
pub async fn a_repeated_event_id_is_stored_once_in_the_store<S: EventStore>(store: S) {
    let e = event("Once", b"{}");
    store
        .append(
            &unique_stream("dup"),
            ExpectedRevision::NoStream,
            vec![e.clone()],
        )
        .await
        .unwrap();
    let _ = store
        .append(
            &unique_stream("dup-other"),
            ExpectedRevision::Any,
            vec![e.clone()],
        )
        .await;
    let all = store.read_all(None, 1_000_000).await.unwrap();
    assert_eq!(all.iter().filter(|r| r.id == e.id).count(), 1);
}

pub async fn concurrent_writers_and_a_subscriber<S: EventStore>(store: S) {
    const WRITERS: usize = 8;
    const EACH: usize = 1000;
    let start = store.head().await.unwrap();
    let mut subscription = store.subscribe(start);
    let prefix = Uuid::now_v7().to_string();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let stream = format!("writer-{prefix}-{w}");
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let e = event(
                    "Appended",
                    format!("{{\"writer\":{w},\"i\":{i}}}").as_bytes(),
                );
                let expected = if i == 0 {
                    ExpectedRevision::NoStream
                } else {
                    ExpectedRevision::Exact(i as u64 - 1)
                };
                let result = store
                    .append(&stream, expected, vec![e.clone()])
                    .await
                    .unwrap();
                acked.push((e.id, result.position));
            }
            acked
        }));
    }
    let mut acked: HashMap<Uuid, Position> = HashMap::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert_eq!(acked.len(), WRITERS * EACH);
    let mut seen = HashSet::new();
    let mut last: Option<Position> = None;
    let mut revisions: HashMap<String, u64> = HashMap::new();
    while seen.len() < acked.len() {
        let e = next_within(&mut subscription, &store).await;
        assert!(
            last.is_none_or(|l| l < e.position),
            "feed out of order: {last:?} then {}",
            e.position
        );
        last = Some(e.position);
        if !e.stream.starts_with(&format!("writer-{prefix}-")) {
            continue;
        }
        assert!(seen.insert(e.id), "event {} delivered twice", e.id);
        assert_eq!(
            acked.get(&e.id),
            Some(&e.position),
            "delivered at another position than acknowledged"
        );
        let expected_revision = revisions.entry(e.stream.to_string()).or_insert(0);
        assert_eq!(
            e.revision, *expected_revision,
            "stream {} out of order",
            e.stream
        );
        *expected_revision += 1;
    }
    // Nothing more of ours arrives.
    let head = store.head().await.unwrap();
    let tail = store.read_all(last, 100_000).await.unwrap();
    assert!(tail
        .iter()
        .all(|e| !e.stream.starts_with(&format!("writer-{prefix}-"))));
    assert!(last <= head);
}

pub async fn a_subscriber_can_start_in_the_middle<S: EventStore>(store: S) {
    let stream = unique_stream("middle");
    let mut positions = Vec::new();
    for i in 0..100u32 {
        let r = store
            .append(
                &stream,
                ExpectedRevision::Any,
                vec![event("N", &i.to_be_bytes())],
            )
            .await
            .unwrap();
        positions.push(r.position);
    }
    let mut subscription = store.subscribe(Some(positions[49]));
    for expected in &positions[50..] {
        let e = next_within(&mut subscription, &store).await;
        if *e.stream != *stream {
            continue;
        }
        assert_eq!(e.position, *expected);
    }
    // Then live.
    let live = store
        .append(&stream, ExpectedRevision::Any, vec![event("Live", b"{}")])
        .await
        .unwrap();
    loop {
        let e = next_within(&mut subscription, &store).await;
        if *e.stream == *stream {
            assert_eq!(e.position, live.position);
            assert_eq!(&*e.event_type, "Live");
            break;
        }
    }
}

/// The feed's leaves and roots computed here from the events read back, in feed order.
pub async fn tree_of_feed<S: EventStore>(store: &S) -> (registry_ledger::Tree, Vec<RecordedEvent>) {
    let events = store.read_all(None, 1_000_000).await.unwrap();
    let mut tree = registry_ledger::Tree::new();
    for event in &events {
        tree.push(event.leaf().hash());
    }
    (tree, events)
}

/// The root of the first `size` leaves from the hashes the store keeps.
pub async fn stored_root<S: EventStore>(store: &S, size: u64) -> registry_ledger::Hash {
    let nodes = store
        .log_nodes(registry_ledger::root_nodes(size))
        .await
        .unwrap();
    registry_ledger::root(&nodes, size).unwrap()
}

/// Waits until a signed checkpoint covers `size` leaves; answers the newest.
pub async fn checkpoint_covering<S: EventStore>(store: &S, size: u64) -> StoredCheckpoint {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(checkpoint) = store.log_checkpoint(None).await.unwrap() {
            if checkpoint.size >= size {
                return checkpoint;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint covered {size} leaves within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The verifiable log follows the feed: appends from concurrent writers, some refused in the
/// middle of a group, end up as leaves in feed order; a checkpoint signed by the log's key
/// covers them within seconds; every event proves its inclusion from the hashes the store
/// serves; an earlier checkpoint is consistent with the newest.
pub async fn the_log_follows_the_feed<S: EventStore>(
    store: S,
    log_key: &registry_ledger::VerifierKey,
) {
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let stream = unique_stream(&format!("log-{w}"));
            let mut last: Option<AppendResult> = None;
            for n in 0..15u64 {
                let expected = last.map_or(ExpectedRevision::NoStream, |a| {
                    ExpectedRevision::Exact(a.next_expected)
                });
                let events =
                    vec![event("Logged", format!("{w}:{n}").as_bytes()); 1 + (n % 3) as usize]
                        .into_iter()
                        .map(|mut e| {
                            e.id = Uuid::now_v7();
                            e
                        })
                        .collect();
                last = Some(store.append(&stream, expected, events).await.unwrap());
                // A refused append between accepted ones leaves no leaf behind.
                let refused = store
                    .append(
                        &stream,
                        ExpectedRevision::Exact(999),
                        vec![event("Refused", b"x")],
                    )
                    .await;
                assert!(refused.is_err());
            }
            last.map(|a| a.position)
        }));
    }
    let mut newest = None;
    for writer in writers {
        newest = newest.max(writer.await.unwrap());
    }
    // Every append in the feed (PostgreSQL shows them once older transactions have ended).
    wait_for_feed(&store, newest.unwrap()).await;
    let (tree, events) = tree_of_feed(&store).await;
    let size = events.len() as u64;
    let first = checkpoint_covering(&store, size).await;
    let (checkpoint, _) = registry_ledger::Checkpoint::open(&first.note, log_key).unwrap();
    assert_eq!(checkpoint.size, first.size);
    assert_eq!(checkpoint.size, size, "a checkpoint past the feed's head");
    assert_eq!(Some(checkpoint.root), tree.root(size));
    assert_eq!(stored_root(&store, size).await, checkpoint.root);
    for (i, event) in events.iter().enumerate() {
        let index = store.log_index(event.position).await.unwrap();
        assert_eq!(index, Some(i as u64), "{}", event.position);
        let nodes = store
            .log_nodes(registry_ledger::inclusion_nodes(i as u64, size))
            .await
            .unwrap();
        let proof = registry_ledger::inclusion_proof(&nodes, i as u64, size).unwrap();
        registry_ledger::verify_inclusion(
            &event.leaf().hash(),
            i as u64,
            size,
            &proof,
            &checkpoint.root,
        )
        .unwrap();
    }
    // More events, a newer checkpoint, and the proof that it extends the first.
    let more = store
        .append(
            &unique_stream("log-more"),
            ExpectedRevision::NoStream,
            vec![event("Logged", b"more")],
        )
        .await
        .unwrap();
    wait_for_feed(&store, more.position).await;
    let newer = checkpoint_covering(&store, size + 1).await;
    assert_eq!(
        store.log_checkpoint(Some(first.size)).await.unwrap(),
        Some(first)
    );
    let (newer, _) = registry_ledger::Checkpoint::open(&newer.note, log_key).unwrap();
    let nodes = store
        .log_nodes(registry_ledger::consistency_nodes(size, newer.size))
        .await
        .unwrap();
    let proof = registry_ledger::consistency_proof(&nodes, size, newer.size).unwrap();
    registry_ledger::verify_consistency(size, newer.size, &checkpoint.root, &newer.root, &proof)
        .unwrap();
}

#[macro_export]
macro_rules! conformance_suite {
    ($fixture:expr) => {
        $crate::conformance_suite!(@tests $fixture;
            expected_revision_conflicts,
            ordering_and_read_your_writes,
            reads_chosen_revisions_in_order,
            reads_events_seen_at_their_positions,
            large_and_unicode_payloads,
            bad_appends_are_rejected_and_change_nothing,
            a_repeated_event_id_is_stored_once_in_its_stream,
            concurrent_writers_and_a_subscriber,
            a_subscriber_can_start_in_the_middle,
        );
    };
    (@tests $fixture:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(fixture) = $fixture.await else { return };
                conformance::$name(fixture.store.clone()).await;
                drop(fixture);
            }
        )*
    };
}
