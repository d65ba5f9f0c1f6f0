//! `registry-audit`: the audit service alone, following the configured store.

use registry_audit::{AuditApi, SERVICE_NAME};
use registry_service_core::serve::{main_of, Hosted};
use registry_service_core::Reader;

fn main() {
    main_of("audit", |config, store| async move {
        let reader = Reader::start_with(store, config.snapshots.clone());
        let hosted = vec![Hosted::reading(SERVICE_NAME, &reader)];
        let routes = tonic::service::Routes::new(AuditApi::server(
            reader,
            config.max_message_bytes,
            config.log_witnesses.clone(),
            config.history_cache_bytes,
        ));
        Ok((routes, hosted))
    });
}
