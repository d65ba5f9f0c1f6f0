//! TLS over real sockets: `registryd` serving with a certificate and accepting only clients
//! whose certificate its CA signed (mutual TLS). A client with such a certificate writes and
//! reads back, recorded under its certificate's name; one without, one that does not trust the
//! server's CA, and one speaking plaintext are all turned away before any call reaches a
//! service, and what they tried is not recorded. Without mutual TLS the declared actor is
//! recorded.
//! The certificates are in `tests/tls/` (how they were made: `tests/tls/README.md`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::{Path, PathBuf};

use registry_client::{request_id, v1, Client, Tls};
use support::Daemon;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tls").join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// `registryd` on a store in `dir`, serving TLS with the test server certificate and, when
/// `mutual`, admitting only clients with a certificate of the test CA.
fn tls_daemon(dir: &Path, mutual: bool) -> Daemon {
    let (cert, key, ca) = (
        fixture("server.pem"),
        fixture("server.key"),
        fixture("ca.pem"),
    );
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    if mutual {
        args.extend(["--tls-client-ca", ca.to_str().unwrap()]);
    }
    Daemon::embedded(dir, &args)
}

/// Registers a person through `client`: its resource name, or the status refusing it.
async fn register(client: &Client) -> Result<String, tonic::Status> {
    let written = client
        .command()
        .register_person(v1::RegisterPersonRequest {
            request_id: request_id(),
            display_name: "Nguyễn Văn An".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(written.result.unwrap().name)
}

/// Whether a client with `tls` at `address` is turned away: at the connection, or at its first
/// call.
async fn turned_away(address: &str, tls: &Tls) -> bool {
    match Client::connect_with(address, tls).await {
        Err(_) => true,
        Ok(client) => register(&client).await.is_err(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_clients_with_a_certificate_of_the_ca_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = tls_daemon(dir.path(), true);
    let https = daemon.address.replace("http://", "https://");
    let known = Tls {
        ca: Some(read("ca.pem")),
        identity: Some((read("client.pem"), read("client.key"))),
    };

    // The actor recorded is the certificate's name; a different declared one is whom it acts
    // for.
    let connected = Client::connect_with(&https, &known).await.unwrap();
    let client = connected.clone().with_actor("registrar@test").unwrap();
    let person = register(&client).await.unwrap();
    let for_clerk = connected.with_actor("clerk-7").unwrap();
    let clerk = register(&for_clerk).await.unwrap();
    let history = history(&client, &person).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].event_type, "PersonRegistered");
    assert_eq!(history[0].actor, "registrar@test");
    assert_eq!(
        actor_of(&client, &clerk).await,
        "registrar@test for clerk-7"
    );
    // An import's records too.
    let person_id = uuid::Uuid::now_v7();
    let record = v1::ImportRecord {
        record: Some(v1::import_record::Record::Person(
            v1::RegisterPersonRequest {
                request_id: request_id(),
                person_id: person_id.to_string(),
                display_name: "Phạm Thị Nhập".into(),
                ..Default::default()
            },
        )),
    };
    for_clerk
        .command()
        .import_records(futures::stream::iter([v1::ImportRecordsRequest {
            records: vec![record],
        }]))
        .await
        .unwrap();
    let imported = format!("persons/{person_id}");
    assert_eq!(
        actor_of(&client, &imported).await,
        "registrar@test for clerk-7"
    );

    // No client certificate; the server's CA not trusted (the system's roots); plaintext.
    let anonymous = Tls {
        ca: Some(read("ca.pem")),
        identity: None,
    };
    assert!(turned_away(&https, &anonymous).await);
    assert!(turned_away(&https, &Tls::default()).await);
    assert!(turned_away(&daemon.address, &Tls::default()).await);

    // Only the known client's write was recorded.
    let stats = support::store_stats(&client).await;
    assert_eq!(stats.events, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_ca_any_client_that_trusts_the_server_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = tls_daemon(dir.path(), false);
    let https = daemon.address.replace("http://", "https://");
    let trusting = Tls {
        ca: Some(read("ca.pem")),
        identity: None,
    };
    let client = Client::connect_with(&https, &trusting)
        .await
        .unwrap()
        .with_actor("clerk-7")
        .unwrap();
    let person = register(&client).await.unwrap();
    assert!(turned_away(&daemon.address, &Tls::default()).await);
    // No client certificate: the declared actor is recorded as sent.
    assert_eq!(actor_of(&client, &person).await, "clerk-7");
}

/// Who recorded the first event about `name`.
async fn actor_of(client: &Client, name: &str) -> String {
    history(client, name).await[0].actor.clone()
}

/// The recorded history of `name`, once the read models have every write made so far.
async fn history(client: &Client, name: &str) -> Vec<v1::Change> {
    let head = support::store_stats(client).await.head_position;
    client
        .audit()
        .list_resource_history(v1::ListResourceHistoryRequest {
            name: name.to_owned(),
            min_position: head,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes
}
