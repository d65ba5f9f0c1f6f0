//! `registry-command`: the command service alone, against the configured store.

use registry_command::{CommandApi, SERVICE_NAME};
use registry_service_core::serve::{main_of, Hosted};
use registry_service_core::Writer;

fn main() {
    main_of("command", |config, store| async move {
        let writer = Writer::open_with(store, Default::default(), config.snapshots.clone()).await?;
        let hosted = vec![Hosted::writing(SERVICE_NAME, &writer)];
        let routes =
            tonic::service::Routes::new(CommandApi::server(writer, config.max_message_bytes));
        Ok((routes, hosted))
    });
}
