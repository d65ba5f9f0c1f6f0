//! `registryd`, the all-in-one registry daemon: the command, query, audit and admin services on
//! one port, over one store (the embedded SQLite store by default), with gRPC health checking
//! and server reflection.
//!
//! One writer and one reader are shared by the services, so a write is visible to the queries
//! of this process as soon as its commit position is reached. `--services` hosts a subset, for
//! deployments that scale the read side apart from the write side.

use registry_admin::AdminApi;
use registry_audit::AuditApi;
use registry_command::CommandApi;
use registry_query::QueryApi;
use registry_service_core::serve::{main_with, Hosted};
use registry_service_core::{Reader, Writer};

/// mimalloc instead of the system allocator: glibc's malloc slowed down on the heap a national
/// registry leaves after its start (`_int_malloc` and `malloc_consolidate` took a large share of
/// a query's time in profiles).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    main_with(|config, store| async move {
        let hosts = |name: &str| config.services.iter().any(|s| s == name);
        let limit = config.max_message_bytes;
        // The reader follows the store in a task of its own from now on, so it folds the feed
        // while the writer folds it too: on two cores a start takes one fold, not two.
        let reader = (hosts("query") || hosts("audit") || hosts("admin"))
            .then(|| Reader::start_with(store.clone(), config.snapshots.clone()));
        let writer = if hosts("command") || hosts("admin") {
            Some(
                Writer::open_with(store.clone(), Default::default(), config.snapshots.clone())
                    .await?,
            )
        } else {
            None
        };
        let mut routes = tonic::service::Routes::builder();
        // Each service says SERVING once its state has reached the store's head as of start:
        // the writer's is folded before serving, the readers' folds go on in the background.
        let mut hosted = Vec::new();
        if let (true, Some(writer)) = (hosts("command"), &writer) {
            routes.add_service(CommandApi::server(writer.clone(), limit));
            hosted.push(Hosted::writing(registry_command::SERVICE_NAME, writer));
        }
        if let (true, Some(reader)) = (hosts("query"), &reader) {
            routes.add_service(QueryApi::server(reader.clone(), limit));
            hosted.push(Hosted::reading(registry_query::SERVICE_NAME, reader));
        }
        if let (true, Some(reader)) = (hosts("audit"), &reader) {
            routes.add_service(AuditApi::server(
                reader.clone(),
                limit,
                config.log_witnesses.clone(),
                config.history_cache_bytes,
            ));
            hosted.push(Hosted::reading(registry_audit::SERVICE_NAME, reader));
        }
        if let (true, Some(writer), Some(reader)) = (hosts("admin"), writer, reader.clone()) {
            hosted
                .push(Hosted::reading(registry_admin::SERVICE_NAME, &reader).and_writing(&writer));
            routes.add_service(AdminApi::server(writer, reader, limit));
        }
        let mut routes = routes.routes();
        // The auditors' view in a browser, beside the query service and from its reader.
        if let (true, Some(reader)) = (hosts("query"), &reader) {
            routes = registry_web::beside(routes, reader.clone());
        }
        Ok((routes, hosted))
    });
}
