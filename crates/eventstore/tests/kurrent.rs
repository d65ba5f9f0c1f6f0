//! The KurrentDB backend. No server is available on the build machines: the conformance suite
//! runs only when `REGISTRY_TEST_ESDB` holds a connection string (for example
//! `kurrentdb://127.0.0.1:2113?tls=false`), and prints a notice otherwise, unless
//! `REGISTRY_REQUIRE_ESDB=1` (for a CI that has a server), where it fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[macro_use]
mod conformance;

use conformance::Fixture;
use registry_eventstore::*;

async fn kurrent() -> Option<Fixture<KurrentStore>> {
    let Ok(connection) = std::env::var("REGISTRY_TEST_ESDB") else {
        assert_ne!(
            std::env::var("REGISTRY_REQUIRE_ESDB").as_deref(),
            Ok("1"),
            "REGISTRY_REQUIRE_ESDB=1 but no KurrentDB server is given (REGISTRY_TEST_ESDB)"
        );
        conformance::notice(
            "skipping KurrentDB test, REGISTRY_TEST_ESDB is not set (no server here)",
        );
        return None;
    };
    let store = KurrentStore::connect(&connection)
        .await
        .expect("KurrentDB connection string");
    Some(Fixture {
        store,
        guard: Box::new(()),
    })
}

conformance_suite!(kurrent());

#[tokio::test]
async fn a_malformed_connection_string_is_refused() {
    match KurrentStore::connect("http://not a kurrent url").await {
        Err(StoreError::Backend { message, .. }) => assert!(!message.is_empty()),
        Err(other) => panic!("unexpected {other}"),
        Ok(_) => panic!("accepted a malformed connection string"),
    }
}
