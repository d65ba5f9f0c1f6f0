//! `registry-admin`: the admin service alone, against the configured store.

use registry_admin::{AdminApi, SERVICE_NAME};
use registry_service_core::serve::{main_of, Hosted};
use registry_service_core::{Reader, Writer};

fn main() {
    main_of("admin", |config, store| async move {
        let writer =
            Writer::open_with(store.clone(), Default::default(), config.snapshots.clone()).await?;
        let reader = Reader::start_with(store, config.snapshots.clone());
        let hosted = vec![Hosted::reading(SERVICE_NAME, &reader).and_writing(&writer)];
        let routes =
            tonic::service::Routes::new(AdminApi::server(writer, reader, config.max_message_bytes));
        Ok((routes, hosted))
    });
}
