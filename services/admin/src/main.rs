//! `registry-admin`: the admin service alone, against the configured store.

use registry_admin::{AdminApi, SERVICE_NAME};
use registry_runtime::serve::{main_with, Hosted};
use registry_runtime::{Reader, Writer};

fn main() {
    main_with(|config, store| async move {
        let writer = Writer::open(store.clone(), Default::default()).await?;
        let reader = Reader::start(store);
        let hosted = vec![Hosted::reading(SERVICE_NAME, &reader)];
        let routes =
            tonic::service::Routes::new(AdminApi::server(writer, reader, config.max_message_bytes));
        Ok((routes, hosted))
    });
}
