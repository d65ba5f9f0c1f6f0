//! Keys, notes and signatures against the reference implementation's published example
//! (`golang.org/x/mod/sumdb/note`) and the C2SP spec's example key; checkpoints and
//! cosignatures round-tripped, and every alteration refused.

#![allow(clippy::unwrap_used)]

use super::*;

const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIGNATURE: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn keys_and_signatures_match_the_reference_implementation_byte_for_byte() {
    let key = SigningKey::parse(GO_SKEY).unwrap();
    assert_eq!(key.to_text(), GO_SKEY);
    assert_eq!(key.verifier().to_string(), GO_VKEY);
    assert_eq!(VerifierKey::parse(GO_VKEY).unwrap(), key.verifier());
    let note = Note::signed(GO_TEXT, &[key], 0).to_string();
    assert_eq!(note, format!("{GO_TEXT}\n{GO_SIGNATURE}"));
    Note::parse(&note)
        .unwrap()
        .verify(&VerifierKey::parse(GO_VKEY).unwrap())
        .unwrap();
    // The spec's example verifier key reads, and its id is checked.
    VerifierKey::parse("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
        .unwrap();
    assert!(VerifierKey::parse(
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
    )
    .is_err());
}

#[test]
fn malformed_keys_are_refused() {
    for bad in [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
        "PeterNeumann+c74f20a3+!!!",
        // A private key where a public one belongs.
        GO_SKEY,
    ] {
        assert!(VerifierKey::parse(bad).is_err(), "{bad:?}");
    }
    assert!(SigningKey::parse(GO_VKEY).is_err());
    assert!(SigningKey::parse(&GO_SKEY.replace("c74f20a3", "c74f20a4")).is_err());
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "registry.test/offices".into(),
        size: 1234,
        root: [7; 32],
        time: 1_796_000_000,
    }
}

#[test]
fn a_checkpoint_round_trips_and_only_its_logs_key_opens_it() {
    let key = SigningKey::generate("registry.test/offices").unwrap();
    let signed = checkpoint().sign(std::slice::from_ref(&key));
    assert!(signed.starts_with("registry.test/offices\n1234\nBwcH"));
    assert!(signed.contains("\ntime 1796000000\n\n— registry.test/offices "));
    let (opened, _) = Checkpoint::open(&signed, &key.verifier()).unwrap();
    assert_eq!(opened, checkpoint());

    let other = SigningKey::generate("registry.test/offices").unwrap();
    assert!(matches!(
        Checkpoint::open(&signed, &other.verifier()),
        Err(NoteError::Unsigned(_))
    ));
    // A key of another log signs a checkpoint of this origin: refused.
    let elsewhere = SigningKey::generate("elsewhere.test").unwrap();
    let forged = checkpoint().sign(std::slice::from_ref(&elsewhere));
    assert!(Checkpoint::open(&forged, &elsewhere.verifier()).is_err());
}

#[test]
fn any_change_to_a_signed_checkpoint_is_refused() {
    let key = SigningKey::generate("registry.test/offices").unwrap();
    let signed = checkpoint().sign(std::slice::from_ref(&key));
    let verifier = key.verifier();
    for (from, to) in [
        ("1234", "1235"),
        ("BwcH", "CAcH"),
        ("time 1796000000", "time 1796000001"),
        ("registry.test/offices\n1234", "registry.test/office\n1234"),
    ] {
        let altered = signed.replacen(from, to, 1);
        assert_ne!(altered, signed);
        assert!(
            Checkpoint::open(&altered, &verifier).is_err(),
            "{from} → {to}"
        );
    }
    // A signature byte flipped.
    let (text, line) = signed.rsplit_once(' ').unwrap();
    let mut blob = STANDARD.decode(line.trim_end()).unwrap();
    blob[10] ^= 1;
    let flipped = format!("{text} {}\n", STANDARD.encode(blob));
    assert!(matches!(
        Checkpoint::open(&flipped, &verifier),
        Err(NoteError::BadSignature(_))
    ));
    for bad in ["", "no blank line\n", "a\n\n— x\n", "a\n\n— x AAAA\n"] {
        assert!(Note::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn two_keys_sign_during_a_rotation_and_each_opens_it() {
    // The old key as read back from its file, the new one fresh.
    let old = SigningKey::parse(
        &SigningKey::generate("registry.test/offices")
            .unwrap()
            .to_text(),
    )
    .unwrap();
    let new = SigningKey::generate("registry.test/offices").unwrap();
    let (old_key, new_key) = (old.verifier(), new.verifier());
    let signed = checkpoint().sign(&[old, new]);
    assert_eq!(signed.matches("\n— registry.test/offices ").count(), 2);
    assert_eq!(Checkpoint::open(&signed, &old_key).unwrap().0, checkpoint());
    assert_eq!(Checkpoint::open(&signed, &new_key).unwrap().0, checkpoint());
}

#[test]
fn a_witness_cosignature_is_checked_with_its_time_and_refused_when_moved() {
    let log = SigningKey::generate("registry.test/offices").unwrap();
    let witness = SigningKey::generate("witness.agency.test")
        .unwrap()
        .as_cosigner()
        .unwrap();
    let mut note = Note::parse(&checkpoint().sign(std::slice::from_ref(&log))).unwrap();
    note.sign(&witness, 1_796_000_100);
    let text = note.to_string();
    let reread = Note::parse(&text).unwrap();
    reread.verify(&log.verifier()).unwrap();
    let witness_key = VerifierKey::parse(&witness.verifier().to_string()).unwrap();
    assert!(witness_key.is_cosigner());
    assert_eq!(reread.verify_cosignature(&witness_key), Ok(1_796_000_100));
    // The log's key is not a witness's, nor the witness's a log's.
    assert!(reread.verify_cosignature(&log.verifier()).is_err());
    assert!(reread.verify(&witness_key).is_err());
    // The cosignature over another checkpoint does not carry over.
    let line = text.lines().last().unwrap();
    let other = Checkpoint {
        size: 1235,
        ..checkpoint()
    };
    let moved = format!("{}{line}\n", other.sign(std::slice::from_ref(&log)));
    assert!(matches!(
        Note::parse(&moved)
            .unwrap()
            .verify_cosignature(&witness_key),
        Err(NoteError::BadSignature(_))
    ));
}
