//! The verifiable log, for auditors and for the operators who keep its key: `regctl keygen`
//! makes a signing key, `regctl verify` checks a store offline (every event against the log and
//! the signed checkpoints) or a server online (its newest checkpoint against one saved earlier,
//! and leaves at random).
//!
//! The log's public key always comes from the verifier's own file (`--log-public-key`), never
//! from the registry being checked.

use std::path::{Path, PathBuf};

use clap::Args;
use registry_client::v1;
use registry_eventstore::verify::{verify_embedded, verify_postgres, Report, VerifyOptions};
use registry_ledger::{Checkpoint, Hash, Leaf, Note, SigningKey, VerifierKey};

use crate::args::CliError;
use crate::output::{json, note, Answer, Format};
use crate::Context;

/// `regctl keygen`.
#[derive(Debug, Args)]
pub struct Keygen {
    /// The log's (or the witness's) name: a checkpoint's origin line, such as
    /// `registry.example.gov.vn/offices`.
    #[arg(long)]
    name: String,
    /// Where to write the private key (readable by its owner only; never overwritten). The
    /// public key is written beside it, with `.pub` added.
    #[arg(long)]
    out: PathBuf,
    /// A witness's key, to cosign the log's checkpoints (its public key then has type 0x04).
    #[arg(long)]
    witness: bool,
}

impl Keygen {
    /// Makes the key.
    pub fn run(&self) -> Result<(), CliError> {
        let key = SigningKey::generate(&self.name)
            .map_err(|e| CliError::Usage(format!("--name: {e}")))?;
        let public = if self.witness {
            key.as_cosigner()
                .map_err(|e| CliError::Usage(e.to_string()))?
                .verifier()
        } else {
            key.verifier()
        };
        write_new(&self.out, &format!("{}\n", key.to_text()), true)?;
        let public_path = PathBuf::from(format!("{}.pub", self.out.display()));
        write_new(&public_path, &format!("{public}\n"), false)?;
        println!("{public}");
        note(format!(
            "private key in {} (keep it readable by the registry only); public key in {}: give it to verifiers",
            self.out.display(),
            public_path.display()
        ));
        Ok(())
    }
}

/// Writes a file that must not exist yet (a secret one readable by its owner only).
fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), CliError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let io = |e: std::io::Error| CliError::Io(format!("{}: {e}", path.display()));
    let mut file = options.open(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// `regctl verify`.
#[derive(Debug, Args)]
pub struct Verify {
    /// The log's public key file(s) (`<name>+<id>+<key>` lines, from `regctl keygen` or the
    /// registry's `log.pub`); any key listed verifies, as during a rotation.
    #[arg(long, required = true)]
    log_public_key: Vec<PathBuf>,
    /// Check this store offline instead of a server: an embedded store's directory or its
    /// `registry.db` file, or a `postgres://` URL.
    #[arg(long)]
    store: Option<String>,
    /// The PostgreSQL schema of the store's tables.
    #[arg(long, default_value = "registry")]
    pg_schema: String,
    /// Offline: events under no signed checkpoint are a finding however recent (a live log
    /// signs within about a second; older unsigned events are always one).
    #[arg(long)]
    strict: bool,
    /// Online: a checkpoint saved earlier (by --save); the server's must extend it.
    #[arg(long)]
    since: Option<PathBuf>,
    /// Online: save the server's checkpoint here once it verifies, for the next --since.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Online: also prove this many leaves chosen at random.
    #[arg(long, default_value_t = 0)]
    spot_check: u32,
}

/// Reads the pinned public keys.
pub fn keys(paths: &[PathBuf]) -> Result<Vec<VerifierKey>, CliError> {
    let mut keys = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(
                VerifierKey::parse(line)
                    .map_err(|e| CliError::Usage(format!("{}:{}: {e}", path.display(), i + 1)))?,
            );
        }
    }
    if keys.is_empty() {
        return Err(CliError::Usage(
            "--log-public-key: no key in the file(s)".into(),
        ));
    }
    Ok(keys)
}

impl Verify {
    /// Whether the check runs offline (it needs no server).
    pub fn offline(&self) -> bool {
        self.store.is_some()
    }

    /// Checks a store: an embedded file, or a PostgreSQL schema.
    pub async fn run_offline(&self, format: Format) -> Result<(), CliError> {
        let options = VerifyOptions {
            keys: keys(&self.log_public_key)?,
            strict: self.strict,
            grace: std::time::Duration::from_secs(10),
        };
        let Some(store) = &self.store else {
            return Err(CliError::Usage("--store is required offline".into()));
        };
        let started = std::time::Instant::now();
        let report = if store.starts_with("postgres://") || store.starts_with("postgresql://") {
            verify_postgres(store, &self.pg_schema, &options)
                .await
                .map_err(|e| CliError::Unavailable(e.to_string()))?
        } else {
            let store = Path::new(store);
            let path = if store.is_dir() {
                store.join("registry.db")
            } else {
                store.to_owned()
            };
            if !path.is_file() {
                return Err(CliError::Io(format!(
                    "{}: no such store file",
                    path.display()
                )));
            }
            verify_embedded(&path, &options).map_err(|e| CliError::Io(e.to_string()))?
        };
        print_report(&report, started.elapsed(), format);
        if report.is_clean() {
            Ok(())
        } else {
            Err(CliError::Unverified(format!(
                "{} finding(s); the first at {}",
                report.findings.len(),
                report.findings[0]
                    .position
                    .map_or("the log".to_owned(), |p| format!("position {p}"))
            )))
        }
    }

    /// Checks a server's log: its checkpoint's signature, its consistency with the one saved,
    /// leaves at random.
    pub async fn run_online(&self, cx: &Context) -> Result<(), CliError> {
        let keys = keys(&self.log_public_key)?;
        let mut audit = cx.client.audit();
        let (current, checkpoint) = newest(&mut audit, &keys).await?;
        let mut rows = vec![
            vec!["log".into(), checkpoint.origin.clone()],
            vec!["size".into(), checkpoint.size.to_string()],
            vec!["root".into(), hex(&checkpoint.root)],
            vec!["signed at".into(), checkpoint.time.to_string()],
        ];
        if let Some(since) = &self.since {
            let text = std::fs::read_to_string(since)
                .map_err(|e| CliError::Io(format!("{}: {e}", since.display())))?;
            let old = open(&text, &keys)
                .map_err(|e| CliError::Usage(format!("{}: {e}", since.display())))?;
            if old.size > checkpoint.size {
                return Err(CliError::Unverified(format!(
                    "the server's log has {} leaves, fewer than the {} of the checkpoint saved in {}: it was truncated or forked",
                    checkpoint.size,
                    old.size,
                    since.display()
                )));
            }
            extends(&mut audit, &old, &checkpoint).await?.map_err(|e| {
                CliError::Unverified(format!(
                    "the server's log of {} leaves does not extend the one of {} saved in {}: {e}",
                    checkpoint.size,
                    old.size,
                    since.display()
                ))
            })?;
            rows.push(vec![
                "extends".into(),
                format!("the checkpoint of size {} in {}", old.size, since.display()),
            ]);
        }
        if self.spot_check > 0 && checkpoint.size > 0 {
            use rand::Rng;
            let mut rng = rand::rng();
            for _ in 0..self.spot_check {
                let index = rng.random_range(0..checkpoint.size);
                let answer = audit
                    .get_inclusion_proof(v1::GetInclusionProofRequest {
                        position: String::new(),
                        tree_size: checkpoint.size,
                        leaf_index: Some(index),
                    })
                    .await?
                    .into_inner();
                let proof = answer
                    .proof
                    .ok_or_else(|| CliError::Unavailable("the server sent no proof".into()))?;
                check_inclusion(&proof, index, &checkpoint)
                    .map_err(|e| CliError::Unverified(format!("leaf {index}: {e}")))?;
            }
            rows.push(vec!["leaves proved".into(), self.spot_check.to_string()]);
        }
        if let Some(save) = &self.save {
            std::fs::write(save, &current.note)
                .map_err(|e| CliError::Io(format!("{}: {e}", save.display())))?;
        }
        Answer {
            document: json(&current, "registry.v1.Checkpoint"),
            items: vec![],
            headers: &["", ""],
            rows,
        }
        .print(cx.format);
        Ok(())
    }
}

type AuditClient =
    registry_client::v1::audit_service_client::AuditServiceClient<registry_client::Inner>;

/// The server's newest checkpoint, as sent and as opened with the pinned keys.
async fn newest(
    audit: &mut AuditClient,
    keys: &[VerifierKey],
) -> Result<(v1::Checkpoint, Checkpoint), CliError> {
    let current = audit
        .get_checkpoint(v1::GetCheckpointRequest { size: 0 })
        .await?
        .into_inner()
        .checkpoint
        .ok_or_else(|| CliError::Unavailable("the server sent no checkpoint".into()))?;
    let checkpoint = open(&current.note, keys)
        .map_err(|e| CliError::Unverified(format!("the server's checkpoint: {e}")))?;
    Ok((current, checkpoint))
}

/// Whether the server proves that `new` extends `old`: the outer error when it cannot be
/// asked, the inner when the proof fails.
async fn extends(
    audit: &mut AuditClient,
    old: &Checkpoint,
    new: &Checkpoint,
) -> Result<Result<(), registry_ledger::ProofError>, CliError> {
    let proof = audit
        .get_consistency_proof(v1::GetConsistencyProofRequest {
            first_size: old.size,
            second_size: new.size,
        })
        .await?
        .into_inner();
    Ok(registry_ledger::verify_consistency(
        old.size,
        new.size,
        &old.root,
        &new.root,
        &hashes(&proof.hashes)?,
    ))
}

/// Opens a signed checkpoint with any of the pinned keys.
pub fn open(note: &str, keys: &[VerifierKey]) -> Result<Checkpoint, String> {
    let mut why = String::from("no key");
    for key in keys {
        match Checkpoint::open(note, key) {
            Ok((checkpoint, _)) => return Ok(checkpoint),
            Err(e) => why = e.to_string(),
        }
    }
    let _ = Note::parse(note).map_err(|e| e.to_string())?;
    Err(why)
}

pub fn hashes(raw: &[Vec<u8>]) -> Result<Vec<Hash>, CliError> {
    raw.iter()
        .map(|h| {
            <Hash>::try_from(h.as_slice())
                .map_err(|_| CliError::Unverified("a proof's hash is not 32 bytes".into()))
        })
        .collect()
}

/// Checks that a proof's leaf is leaf `index` of the checkpoint's tree.
pub fn check_inclusion(
    proof: &v1::InclusionProof,
    index: u64,
    checkpoint: &Checkpoint,
) -> Result<(), String> {
    if proof.leaf_index != index || proof.tree_size != checkpoint.size {
        return Err(format!(
            "the proof is for leaf {} of {}, not leaf {index} of {}",
            proof.leaf_index, proof.tree_size, checkpoint.size
        ));
    }
    Leaf::decode(&proof.leaf).map_err(|e| e.to_string())?;
    let hashes = hashes(&proof.hashes).map_err(|e| e.to_string())?;
    registry_ledger::verify_inclusion(
        &registry_ledger::leaf_hash(&proof.leaf),
        index,
        checkpoint.size,
        &hashes,
        &checkpoint.root,
    )
    .map_err(|e| format!("not in the signed log: {e}"))
}

/// Checks a verified history: every change proved in a checkpoint one of `keys` signed, and
/// every field of it the signed event's. Answers a line saying what was proved.
pub fn check_history(
    changes: &[(v1::Change, Option<v1::Checkpoint>)],
    keys: &[VerifierKey],
) -> Result<String, CliError> {
    let mut sizes = std::collections::BTreeSet::new();
    let mut origin = String::new();
    for (change, served) in changes {
        let refuse = |problem: String| {
            CliError::Unverified(format!("the change at {}: {problem}", change.position))
        };
        let served = served
            .as_ref()
            .ok_or_else(|| refuse("the server sent no checkpoint with it".into()))?;
        let signed =
            open(&served.note, keys).map_err(|e| refuse(format!("the checkpoint: {e}")))?;
        check_change(change, &signed).map_err(refuse)?;
        sizes.insert(signed.size);
        origin = signed.origin;
    }
    let sizes: Vec<String> = sizes.iter().map(u64::to_string).collect();
    Ok(format!(
        "verified: {} change(s), each an event proved in the log {origin} (checkpoint of {} leaves)",
        changes.len(),
        sizes.join(", ")
    ))
}

/// Checks one change of a verified history: its proof holds in `checkpoint`, and its fields
/// are those of the event its proof's leaf encodes.
fn check_change(change: &v1::Change, checkpoint: &Checkpoint) -> Result<(), String> {
    let proof = change
        .proof
        .as_ref()
        .ok_or("it has no proof (no checkpoint covers it yet; ask again in a second)")?;
    check_inclusion(proof, proof.leaf_index, checkpoint)?;
    let leaf = Leaf::decode(&proof.leaf).map_err(|e| e.to_string())?;
    let position = registry_eventstore::Position {
        commit: leaf.position.0,
        prepare: leaf.position.1,
    };
    let recorded = change
        .recorded_at
        .as_ref()
        .map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000);
    let fields = [
        ("position", change.position == position.to_string()),
        ("revision", change.revision == leaf.revision),
        (
            "event_id",
            change.event_id == uuid::Uuid::from_bytes(leaf.id).to_string(),
        ),
        ("event_type", change.event_type == leaf.event_type),
        (
            "schema_version",
            change.schema_version == u32::from(leaf.schema_version),
        ),
        ("actor", change.actor == leaf.actor),
        (
            "request_id",
            change.request_id == leaf.request_id.unwrap_or_default(),
        ),
        (
            "payload_json",
            change.payload_json.as_bytes() == leaf.payload,
        ),
        ("recorded_at", recorded == Some(leaf.recorded_at)),
    ];
    match fields.iter().find(|(_, same)| !same) {
        Some((field, _)) => Err(format!("its {field} is not the signed event's")),
        None => Ok(()),
    }
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn print_report(report: &Report, took: std::time::Duration, format: Format) {
    let rate = report.events as f64 / took.as_secs_f64().max(1e-9);
    if format == Format::Table {
        println!(
            "{} events, {} leaves, {} checkpoints; signed up to leaf {}, {} after it; {:.1} s ({rate:.0} events/s)",
            report.events,
            report.leaves,
            report.checkpoints,
            report.signed,
            report.unsigned,
            took.as_secs_f64()
        );
        for finding in &report.findings {
            println!(
                "{}: {} — {}",
                finding
                    .position
                    .map_or(format!("leaf {}", finding.index), |p| format!(
                        "position {p}"
                    )),
                finding.problem.kind(),
                finding.detail
            );
        }
        if report.is_clean() {
            println!("the log verifies");
        }
        return;
    }
    let document = serde_json::json!({
        "events": report.events,
        "leaves": report.leaves,
        "checkpoints": report.checkpoints,
        "signed": report.signed,
        "unsigned": report.unsigned,
        "seconds": took.as_secs_f64(),
        "findings": report.findings.iter().map(|f| serde_json::json!({
            "leaf": f.index,
            "position": f.position.map(|p| p.to_string()),
            "kind": f.problem.kind(),
            "detail": f.detail,
        })).collect::<Vec<_>>(),
    });
    Answer {
        document,
        items: vec![],
        headers: &[],
        rows: vec![],
    }
    .print(format);
}

/// `regctl witness`.
#[derive(Debug, Args)]
pub struct Witness {
    /// The log's public key file(s).
    #[arg(long, required = true)]
    log_public_key: Vec<PathBuf>,
    /// The witness's private key (from `regctl keygen --witness`).
    #[arg(long)]
    key: PathBuf,
    /// The last checkpoint this witness cosigned, kept between runs (made by the first).
    #[arg(long)]
    state: PathBuf,
}

impl Witness {
    /// Cosigns the server's newest checkpoint if it extends the last one cosigned.
    pub async fn run(&self, cx: &Context) -> Result<(), CliError> {
        let keys = keys(&self.log_public_key)?;
        let text = std::fs::read_to_string(&self.key)
            .map_err(|e| CliError::Io(format!("{}: {e}", self.key.display())))?;
        let witness = SigningKey::parse(&text)
            .and_then(|k| k.as_cosigner())
            .map_err(|e| CliError::Usage(format!("{}: {e}", self.key.display())))?;
        let mut audit = cx.client.audit();
        let (current, checkpoint) = newest(&mut audit, &keys).await?;
        let mut previous = None;
        match std::fs::read_to_string(&self.state) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CliError::Io(format!("{}: {e}", self.state.display()))),
            Ok(text) => {
                let old = open(&text, &keys)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", self.state.display())))?;
                if old.size > checkpoint.size {
                    return Err(CliError::Unverified(format!(
                        "the server's log has {} leaves, fewer than the {} cosigned before: not cosigned",
                        checkpoint.size, old.size
                    )));
                }
                extends(&mut audit, &old, &checkpoint).await?.map_err(|e| {
                    CliError::Unverified(format!(
                        "the server's log of {} leaves does not extend the {} cosigned before ({e}): not cosigned",
                        checkpoint.size, old.size
                    ))
                })?;
                previous = Some(old.size);
            }
        }
        let mut note =
            Note::parse(&current.note).map_err(|e| CliError::Unverified(e.to_string()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        note.sign(&witness, now);
        let kept = audit
            .add_cosignature(v1::AddCosignatureRequest {
                note: note.to_string(),
            })
            .await?
            .into_inner();
        // The state moves on only once the registry has the cosignature.
        let saved = kept.checkpoint.map_or(note.to_string(), |c| c.note);
        let temporary = self.state.with_extension("tmp");
        std::fs::write(&temporary, &saved)
            .and_then(|()| std::fs::rename(&temporary, &self.state))
            .map_err(|e| CliError::Io(format!("{}: {e}", self.state.display())))?;
        println!(
            "cosigned {}'s checkpoint of size {}{}",
            checkpoint.origin,
            checkpoint.size,
            previous.map_or(String::from(" (the first)"), |old| format!(
                ", consistent with the {old} cosigned before"
            ))
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A change as a server would serve it, with its proof in a log of five events.
    fn proved() -> (v1::Change, Checkpoint) {
        let leaf = Leaf {
            position: (3, 3),
            stream: "registry",
            revision: 2,
            id: [7; 16],
            event_type: "PersonRenamed",
            schema_version: 1,
            payload: r#"{"name":"Lê Văn C"}"#.as_bytes(),
            actor: "registrar",
            request_id: Some("r-1"),
            correlation_id: None,
            request_fingerprint: None,
            recorded_at: 1_700_000_000_123_456,
        };
        let mut tree = registry_ledger::Tree::new();
        for i in 0..5u8 {
            if i == 2 {
                tree.push(leaf.hash());
            } else {
                tree.push(registry_ledger::leaf_hash(&[i]));
            }
        }
        let checkpoint = Checkpoint {
            origin: "registry.test/log".into(),
            size: 5,
            root: tree.root(5).unwrap(),
            time: 1_700_000_001,
        };
        let change = v1::Change {
            position: "3".into(),
            revision: 2,
            event_id: uuid::Uuid::from_bytes([7; 16]).to_string(),
            event_type: "PersonRenamed".into(),
            schema_version: 1,
            recorded_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_000,
            }),
            actor: "registrar".into(),
            request_id: "r-1".into(),
            payload_json: r#"{"name":"Lê Văn C"}"#.into(),
            proof: Some(v1::InclusionProof {
                leaf: leaf.encode(),
                leaf_index: 2,
                tree_size: 5,
                hashes: tree
                    .inclusion_proof(2, 5)
                    .unwrap()
                    .iter()
                    .map(|h| h.to_vec())
                    .collect(),
            }),
            ..Default::default()
        };
        (change, checkpoint)
    }

    /// A change is the signed event's only if its proof holds and every field is the leaf's:
    /// a server that changes any field, or sends no proof, is caught.
    #[test]
    fn a_change_is_checked_field_by_field_against_its_proved_leaf() {
        let (change, checkpoint) = proved();
        assert_eq!(check_change(&change, &checkpoint), Ok(()));
        type Alteration = (&'static str, fn(&mut v1::Change));
        let altered: [Alteration; 9] = [
            ("position", |c| c.position = "4".into()),
            ("revision", |c| c.revision = 3),
            ("event_id", |c| c.event_id = uuid::Uuid::nil().to_string()),
            ("event_type", |c| c.event_type = "PersonCorrected".into()),
            ("schema_version", |c| c.schema_version = 2),
            ("actor", |c| c.actor = "someone else".into()),
            ("request_id", |c| c.request_id = "r-2".into()),
            ("payload_json", |c| {
                c.payload_json = r#"{"name":"Lê Văn D"}"#.into();
            }),
            ("recorded_at", |c| {
                c.recorded_at = Some(prost_types::Timestamp {
                    seconds: 1_700_000_001,
                    nanos: 0,
                });
            }),
        ];
        for (field, alter) in altered {
            let mut changed = change.clone();
            alter(&mut changed);
            assert_eq!(
                check_change(&changed, &checkpoint),
                Err(format!("its {field} is not the signed event's")),
            );
        }
        let mut unproved = change.clone();
        unproved.proof = None;
        assert!(check_change(&unproved, &checkpoint)
            .unwrap_err()
            .contains("no proof"));
        let mut forged = change;
        if let Some(proof) = forged.proof.as_mut() {
            // The payload's last letter: C becomes B.
            let at = proof.leaf.windows(3).position(|w| w == b"C\"}").unwrap();
            proof.leaf[at] = b'B';
        }
        assert!(check_change(&forged, &checkpoint)
            .unwrap_err()
            .contains("not in the signed log"));
    }
}
