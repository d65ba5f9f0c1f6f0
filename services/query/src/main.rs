//! `registry-query`: the query service alone, following the configured store.

use registry_query::{QueryApi, SERVICE_NAME};
use registry_service_core::serve::{main_of, Hosted};
use registry_service_core::Reader;

fn main() {
    main_of("query", |config, store| async move {
        let reader = Reader::start_with(store, config.snapshots.clone());
        let hosted = vec![Hosted::reading(SERVICE_NAME, &reader)];
        let routes =
            tonic::service::Routes::new(QueryApi::server(reader, config.max_message_bytes));
        Ok((routes, hosted))
    });
}
