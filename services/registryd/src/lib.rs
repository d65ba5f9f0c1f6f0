//! What `registryd` hosts, built from a configuration and a store: the command, query, audit
//! and admin services (or the subset `--services` names) over one writer and one reader, and
//! the auditors' pages beside the query service. A library so that a test can host the same
//! daemon in its own process, where it injects faults (`failpoints`).

use registry_admin::AdminApi;
use registry_audit::AuditApi;
use registry_command::CommandApi;
use registry_eventstore::AnyStore;
use registry_query::QueryApi;
use registry_service_core::serve::Hosted;
use registry_service_core::{ApiError, Config, Reader, Writer};

/// The routes of the services `config` hosts over `store`, and what each answers from.
pub async fn build(
    config: Config,
    store: AnyStore,
) -> Result<(tonic::service::Routes, Vec<Hosted>), ApiError> {
    let hosts = |name: &str| config.services.iter().any(|s| s == name);
    let limit = config.max_message_bytes;
    // The reader follows the store in a task of its own from now on, so it folds the feed
    // while the writer folds it too: on two cores a start takes one fold, not two.
    let reader = (hosts("query") || hosts("audit") || hosts("admin"))
        .then(|| Reader::start_with(store.clone(), config.snapshots.clone()));
    let writer = if hosts("command") || hosts("admin") {
        Some(Writer::open_with(store.clone(), Default::default(), config.snapshots.clone()).await?)
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
        hosted.push(Hosted::reading(registry_admin::SERVICE_NAME, &reader).and_writing(&writer));
        routes.add_service(AdminApi::server(writer, reader, limit));
    }
    let mut routes = routes.routes();
    // The auditors' view in a browser, beside the query service and from its reader.
    if let (true, Some(reader)) = (hosts("query"), &reader) {
        routes = registry_web::beside(routes, reader.clone());
    }
    Ok((routes, hosted))
}
