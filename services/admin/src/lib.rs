//! The admin service: corrections and retractions (a reason is required; nothing is deleted),
//! rebuilding this replica's read models, and statistics of the store and the read models.

use registry_eventstore::{Direction, EventStore};
use registry_proto::v1 as pb;
use registry_proto::v1::admin_service_server::{AdminService, AdminServiceServer};
use registry_service_core::serve::call;
use registry_service_core::serve::GZIP;
use registry_service_core::{write, Reader, Writer, STREAM};
use tonic::{Request, Response, Status};

/// The gRPC service name, for health checking.
pub const SERVICE_NAME: &str = "registry.v1.AdminService";

/// The admin service over a writer and this replica's reader.
pub struct AdminApi {
    writer: Writer,
    reader: Reader,
}

impl AdminApi {
    /// The service, with the request size limit applied.
    pub fn server(
        writer: Writer,
        reader: Reader,
        max_message_bytes: usize,
    ) -> AdminServiceServer<Self> {
        AdminServiceServer::new(Self { writer, reader })
            .max_decoding_message_size(max_message_bytes)
            .accept_compressed(GZIP)
            .send_compressed(GZIP)
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn correct_person(
        &self,
        r: Request<pb::CorrectPersonRequest>,
    ) -> Answer<pb::CorrectPersonResponse> {
        write(&self.writer, r).await
    }
    async fn correct_office(
        &self,
        r: Request<pb::CorrectOfficeRequest>,
    ) -> Answer<pb::CorrectOfficeResponse> {
        write(&self.writer, r).await
    }
    async fn correct_holding(
        &self,
        r: Request<pb::CorrectHoldingRequest>,
    ) -> Answer<pb::CorrectHoldingResponse> {
        write(&self.writer, r).await
    }
    async fn retract_record(
        &self,
        r: Request<pb::RetractRecordRequest>,
    ) -> Answer<pb::RetractRecordResponse> {
        write(&self.writer, r).await
    }

    async fn rebuild_projections(
        &self,
        _: Request<pb::RebuildProjectionsRequest>,
    ) -> Answer<pb::RebuildProjectionsResponse> {
        call("RebuildProjections", "", async {
            let (events, position, took) = self.reader.rebuild().await?;
            Ok(pb::RebuildProjectionsResponse {
                events,
                position: position.map(|p| p.to_string()).unwrap_or_default(),
                millis: took.as_millis() as u64,
            })
        })
        .await
    }

    async fn get_store_stats(
        &self,
        _: Request<pb::GetStoreStatsRequest>,
    ) -> Answer<pb::GetStoreStatsResponse> {
        call("GetStoreStats", "", async {
            let store = self.writer.store();
            let head = store.head().await?;
            let last = store
                .read_stream(STREAM, u64::MAX, Direction::Backwards, 1)
                .await?;
            let (projection_position, projection_events) = {
                let models = self.reader.models();
                (models.position, models.events)
            };
            Ok(pb::GetStoreStatsResponse {
                backend: store.backend().to_owned(),
                head_position: head.map(|p| p.to_string()).unwrap_or_default(),
                events: last.first().map_or(0, |e| e.revision + 1),
                projection_position: projection_position
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                projection_events,
            })
        })
        .await
    }
}
