//! The verifiable log over real gRPC, checked the way an agency would: with the public key the
//! registry wrote beside its store (pinned, not asked of the server), a write's receipt, a
//! verified history, consistency between two checkpoints, and the errors of bad requests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use registry_client::{v1, Client};
use registry_ledger::{Checkpoint, Hash, Leaf, VerifierKey};
use support::{Daemon, Registrar};
use tonic::Code;

fn pinned(dir: &std::path::Path) -> VerifierKey {
    let text = std::fs::read_to_string(dir.join("log.pub")).expect("log.pub beside the store");
    VerifierKey::parse(&text).unwrap()
}

fn hashes(raw: &[Vec<u8>]) -> Vec<Hash> {
    raw.iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect()
}

/// The newest checkpoint once it covers `size` leaves, opened with the pinned key.
async fn checkpoint(client: &Client, key: &VerifierKey, size: u64) -> (Checkpoint, v1::Checkpoint) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = client
            .audit()
            .get_checkpoint(v1::GetCheckpointRequest { size: 0 })
            .await;
        if let Ok(answer) = answer {
            let served = answer.into_inner().checkpoint.unwrap();
            let (opened, _) = Checkpoint::open(&served.note, key).unwrap();
            assert_eq!(
                (opened.size, opened.root.to_vec()),
                (served.size, served.root_hash.clone())
            );
            if opened.size >= size {
                return (opened, served);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint of {size} leaves"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Checks an inclusion proof against a signed checkpoint, and answers the leaf.
fn check(proof: &v1::InclusionProof, checkpoint: &Checkpoint) -> Leaf<'static> {
    assert_eq!(proof.tree_size, checkpoint.size);
    registry_ledger::verify_inclusion(
        &registry_ledger::leaf_hash(&proof.leaf),
        proof.leaf_index,
        proof.tree_size,
        &hashes(&proof.hashes),
        &checkpoint.root,
    )
    .expect("the proof holds");
    let leaf: &'static [u8] = Box::leak(proof.leaf.clone().into_boxed_slice());
    Leaf::decode(leaf).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_verified_histories_and_consistency_with_a_pinned_key() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &["--log-name", "registry.test/offices"]);
    let client = daemon.client().await;
    let key = pinned(dir.path());
    assert_eq!(key.name(), "registry.test/offices");
    let mut registrar = Registrar::new(client.clone());
    let (commune, _, chair) = registrar.commune_with_chair("Xã Ký Phú").await;
    let person = registrar.person("Nguyễn Văn A").await;
    let first_size: u64 = registrar.last.parse().unwrap();
    let (first, _) = checkpoint(&client, &key, first_size).await;

    // A write's receipt: its position proved in the newest checkpoint.
    let write = registrar.hold(&person, &chair, "2021-06-01", None).await;
    let size: u64 = write.commit_position.parse().unwrap();
    let (newest, _) = checkpoint(&client, &key, size).await;
    let receipt = client
        .audit()
        .get_inclusion_proof(v1::GetInclusionProofRequest {
            position: write.commit_position.clone(),
            tree_size: 0,
            leaf_index: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receipt.checkpoint.unwrap().size, newest.size);
    let leaf = check(&receipt.proof.unwrap(), &newest);
    assert_eq!(leaf.position, (size, size));
    assert_eq!(leaf.event_type, "HoldingStarted");
    // The same leaf asked by index.
    let by_index = client
        .audit()
        .get_inclusion_proof(v1::GetInclusionProofRequest {
            position: String::new(),
            tree_size: newest.size,
            leaf_index: Some(size - 1),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check(&by_index.proof.unwrap(), &newest), leaf);

    // The newer checkpoint extends the first.
    let consistency = client
        .audit()
        .get_consistency_proof(v1::GetConsistencyProofRequest {
            first_size: first.size,
            second_size: newest.size,
        })
        .await
        .unwrap()
        .into_inner();
    registry_ledger::verify_consistency(
        first.size,
        newest.size,
        &first.root,
        &newest.root,
        &hashes(&consistency.hashes),
    )
    .unwrap();

    // A verified history: every change proved in the checkpoint beside it, and each change's
    // fields are its proved leaf's.
    let history = client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: commune.clone(),
            verify: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let signed = history
        .checkpoint
        .expect("a checkpoint with a verified history");
    let (signed, _) = Checkpoint::open(&signed.note, &key).unwrap();
    assert!(!history.changes.is_empty());
    for change in &history.changes {
        let leaf = check(change.proof.as_ref().expect("a proof"), &signed);
        assert_eq!(change.position, leaf.position.0.to_string());
        assert_eq!(change.revision, leaf.revision);
        assert_eq!(change.event_id, uuid::Uuid::from_bytes(leaf.id).to_string());
        assert_eq!(change.event_type, leaf.event_type);
        assert_eq!(change.actor, leaf.actor);
        assert_eq!(change.payload_json.as_bytes(), leaf.payload);
    }
    // Without verify, no proofs.
    let plain = client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: commune,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(plain.checkpoint.is_none() && plain.changes.iter().all(|c| c.proof.is_none()));
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_of_the_log_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::embedded(dir.path(), &[]);
    let client = daemon.client().await;
    let key = pinned(dir.path());
    let mut audit = client.audit();
    // Nothing recorded: nothing signed.
    let empty = audit
        .get_checkpoint(v1::GetCheckpointRequest { size: 0 })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::NotFound, "{empty:?}");
    let mut registrar = Registrar::new(client.clone());
    let person = registrar.person("Trần Thị B").await;
    let (signed, _) = checkpoint(&client, &key, 1).await;
    let prover = client.audit();
    let written = registrar.last.clone();
    let prove = |names: Vec<String>| {
        let mut audit = prover.clone();
        let min_position = written.clone();
        async move {
            audit
                .prove_resources(v1::ProveResourcesRequest {
                    names,
                    min_position,
                    ..Default::default()
                })
                .await
                .map(drop)
        }
    };
    let unknown = format!("persons/{}", uuid::Uuid::now_v7());
    let cases: Vec<(Code, &str, Result<(), tonic::Status>)> = vec![
        (
            Code::InvalidArgument,
            "position",
            audit
                .get_inclusion_proof(v1::GetInclusionProofRequest {
                    position: "not-a-position".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            Code::InvalidArgument,
            "position",
            audit
                .get_inclusion_proof(v1::GetInclusionProofRequest::default())
                .await
                .map(drop),
        ),
        (
            Code::FailedPrecondition,
            "not in the log",
            audit
                .get_inclusion_proof(v1::GetInclusionProofRequest {
                    position: "999999".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            Code::NotFound,
            "size 424242",
            audit
                .get_checkpoint(v1::GetCheckpointRequest { size: 424_242 })
                .await
                .map(drop),
        ),
        (
            Code::InvalidArgument,
            "first_size",
            audit
                .get_consistency_proof(v1::GetConsistencyProofRequest {
                    first_size: signed.size + 1,
                    second_size: signed.size,
                })
                .await
                .map(drop),
        ),
        (
            Code::InvalidArgument,
            "names: is required",
            prove(Vec::new()).await,
        ),
        (
            Code::InvalidArgument,
            "at most 1000 resources",
            prove(vec![person.clone(); 1001]).await,
        ),
        (
            Code::InvalidArgument,
            "names[1]",
            prove(vec![person.clone(), "not a name".into()]).await,
        ),
        (
            Code::NotFound,
            unknown.as_str(),
            prove(vec![person.clone(), unknown.clone()]).await,
        ),
    ];
    for (code, mentions, result) in cases {
        let status = result.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(mentions), "{status:?}");
    }
    daemon.stop();
}

/// On PostgreSQL, two `registryd` given the log's key share one log: one integrates at a time.
/// The first is killed (SIGKILL) while it records; the other takes over from the last stored
/// leaf, and the log then verifies: every event a leaf, in order, under a signed checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_another_process_takes_over_the_log_when_its_integrator_dies() {
    let Some(url) = support::postgres().await else {
        return;
    };
    let schema = format!("e2e_log_{}", uuid::Uuid::now_v7().simple());
    let dir = tempfile::tempdir().unwrap();
    let key = registry_ledger::SigningKey::generate("registry.test/pg-e2e").unwrap();
    let key_path = dir.path().join("log.key");
    std::fs::write(&key_path, format!("{}\n", key.to_text())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let key_arg = key_path.to_str().unwrap();
    let args = [
        "--store",
        url.as_str(),
        "--pg-schema",
        schema.as_str(),
        "--log-key",
        key_arg,
    ];
    let first = Daemon::start(&args);
    let second = Daemon::start(&args);
    let mut via_first = Registrar::new(first.client().await);
    for n in 0..15 {
        via_first.person(&format!("Người thứ {n}")).await;
    }
    // Writes go on through the first while it is killed.
    let writing = {
        let client = first.client().await;
        tokio::spawn(async move {
            for n in 0..200 {
                let answer = client
                    .command()
                    .register_person(v1::RegisterPersonRequest {
                        request_id: registry_client::request_id(),
                        display_name: format!("Người ghi dở {n}"),
                        ..Default::default()
                    })
                    .await;
                if answer.is_err() {
                    return; // The server was killed.
                }
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    first.kill_now();
    let _ = writing.await;
    let mut via_second = Registrar::new(second.client().await);
    for n in 0..15 {
        via_second.person(&format!("Người sau {n}")).await;
    }
    let options = registry_eventstore::verify::VerifyOptions {
        keys: vec![key.verifier()],
        strict: true,
        grace: std::time::Duration::from_secs(10),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let report = loop {
        let report = registry_eventstore::verify::verify_postgres(&url, &schema, &options)
            .await
            .unwrap();
        if report.is_clean() || std::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    // The events recorded after the kill are leaves under a signed checkpoint: the second
    // process integrated them, whichever held the log before.
    assert!(report.is_clean(), "{:?}", report.findings);
    assert!(report.events >= 30);
    assert_eq!(
        (report.leaves, report.signed),
        (report.events, report.events)
    );
    // Two persons recorded after the takeover, proved at once in the newest checkpoint.
    let names = vec![
        via_second.person("Người cuối A").await,
        via_second.person("Người cuối B").await,
    ];
    let client = second.client().await;
    let proved = client
        .audit()
        .prove_resources(v1::ProveResourcesRequest {
            names: names.clone(),
            // Read after the writes: this replica folds the feed behind them.
            min_position: via_second.last.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let served = proved.checkpoint.unwrap();
    let (signed, _) = Checkpoint::open(&served.note, &key.verifier()).unwrap();
    let leaves: Vec<(u64, Hash)> = proved
        .leaves
        .iter()
        .map(|l| (l.index, registry_ledger::leaf_hash(&l.leaf)))
        .collect();
    registry_ledger::verify_batch(&leaves, signed.size, &hashes(&proved.hashes), &signed.root)
        .expect("the batch proof holds");
    for (resource, name) in proved.resources.iter().zip(&names) {
        assert_eq!(&resource.name, name);
        let [index] = resource.leaf_indexes[..] else {
            panic!("one registration each: {resource:?}")
        };
        let leaf = proved.leaves.iter().find(|l| l.index == index).unwrap();
        let leaf = Leaf::decode(&leaf.leaf).unwrap();
        assert_eq!(leaf.event_type, "PersonRegistered");
    }
    second.stop();
    support::drop_schema(&url, &schema).await;
}
