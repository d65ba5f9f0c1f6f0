//! Readiness: a replica started on a stored registry says NOT_SERVING until its read models have
//! folded what the store held at its start, then SERVING for good, and never answers a query
//! from a registry folded in part (issue 23, readiness).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use registry_client::v1;
use registry_testkit::{generate, Config};
use support::Daemon;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_serving_only_once_it_has_read_the_store() {
    let generated = generate(&Config {
        districts_per_province: 4,
        ..Config::province(7)
    });
    let dir = tempfile::tempdir().unwrap();
    registry_bench::load_store(&dir.path().join("registry.db"), &generated.facts)
        .await
        .unwrap();
    let day = registry_domain::Date::from_ymd(2024, 3, 18).unwrap();
    let units = generated
        .registry
        .units()
        .filter(|(_, u)| u.life.contains(day))
        .count();

    // A query replica: no writer folds the store before the port opens.
    let daemon = Daemon::embedded(dir.path(), &["--services", "query"]);
    let client = daemon.client().await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    let (mut answers, mut refused) = (0, 0);
    loop {
        let status = client
            .health()
            .check(tonic_health::pb::HealthCheckRequest {
                service: "registry.v1.QueryService".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if statuses.last() != Some(&status) {
            statuses.push(status);
        }
        // A query without min_position answers the whole registry, or UNAVAILABLE.
        let mut request = tonic::Request::new(v1::ListUnitsRequest {
            date: "2024-03-18".into(),
            page_size: 10_000,
            ..Default::default()
        });
        // The replica waits 90% of the deadline for its catch-up, then says it is not there yet.
        request.set_timeout(Duration::from_millis(200));
        match client.query().list_units(request).await {
            Ok(listed) => {
                assert_eq!(listed.into_inner().units.len(), units, "a partial registry");
                answers += 1;
            }
            Err(status) => {
                refused += 1;
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::DeadlineExceeded
                            | tonic::Code::Cancelled
                    ),
                    "{status:?}"
                )
            }
        }
        if status == ServingStatus::Serving as i32 && answers > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never serving"
        );
    }
    assert_eq!(
        statuses,
        [
            ServingStatus::NotServing as i32,
            ServingStatus::Serving as i32
        ],
        "NOT_SERVING while reading the store ({} events), then SERVING",
        generated.facts.len()
    );
    assert!(
        refused > 0,
        "a query before the catch-up was refused, not answered in part"
    );
    let overall = client
        .health()
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(overall, ServingStatus::Serving as i32);
}

async fn query_health(client: &registry_client::Client) -> i32 {
    client
        .health()
        .check(tonic_health::pb::HealthCheckRequest {
            service: "registry.v1.QueryService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// A replica that loses its store says so: NOT_SERVING, within the lag it is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_its_store_is_not_serving() {
    let Some(url) = support::postgres().await else {
        return;
    };
    let schema = format!("e2e_readiness_{}", std::process::id());
    support::drop_schema(&url, &schema).await;
    let daemon = Daemon::start(&[
        "--store",
        url.as_str(),
        "--pg-schema",
        schema.as_str(),
        "--services",
        "query",
        "--max-lag-seconds",
        "1",
    ]);
    let client = daemon.client().await;
    let started = Instant::now();
    while query_health(&client).await != ServingStatus::Serving as i32 {
        assert!(started.elapsed() < Duration::from_secs(30), "never serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    support::drop_schema(&url, &schema).await;
    let lost = Instant::now();
    while query_health(&client).await != ServingStatus::NotServing as i32 {
        assert!(
            lost.elapsed() < Duration::from_secs(10),
            "still SERVING without its store"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
