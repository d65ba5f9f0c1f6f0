//! The command service: every write the domain supports, over gRPC.
//!
//! Each RPC parses its request into a domain command (`registry_service_core::commands`), and the
//! shared [`Writer`] decides it against the registry and appends its events. The answer carries
//! the commit position, which a reader passes as `min_position` to read its own write.

use registry_proto::v1 as pb;
use registry_proto::v1::command_service_server::{CommandService, CommandServiceServer};
use registry_service_core::serve::GZIP;
use registry_service_core::{import_records, write, Writer};
use tonic::{Request, Response, Status};

/// The gRPC service name, for health checking.
pub const SERVICE_NAME: &str = "registry.v1.CommandService";

/// The command service over a writer.
pub struct CommandApi {
    writer: Writer,
}

impl CommandApi {
    /// The service, with the request size limit applied.
    pub fn server(writer: Writer, max_message_bytes: usize) -> CommandServiceServer<Self> {
        CommandServiceServer::new(Self { writer })
            .max_decoding_message_size(max_message_bytes)
            .accept_compressed(GZIP)
            .send_compressed(GZIP)
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl CommandService for CommandApi {
    async fn register_person(
        &self,
        r: Request<pb::RegisterPersonRequest>,
    ) -> Answer<pb::RegisterPersonResponse> {
        write(&self.writer, r).await
    }
    async fn rename_person(
        &self,
        r: Request<pb::RenamePersonRequest>,
    ) -> Answer<pb::RenamePersonResponse> {
        write(&self.writer, r).await
    }
    async fn add_person_alias(
        &self,
        r: Request<pb::AddPersonAliasRequest>,
    ) -> Answer<pb::AddPersonAliasResponse> {
        write(&self.writer, r).await
    }
    async fn establish_unit(
        &self,
        r: Request<pb::EstablishUnitRequest>,
    ) -> Answer<pb::EstablishUnitResponse> {
        write(&self.writer, r).await
    }
    async fn rename_unit(
        &self,
        r: Request<pb::RenameUnitRequest>,
    ) -> Answer<pb::RenameUnitResponse> {
        write(&self.writer, r).await
    }
    async fn move_unit(&self, r: Request<pb::MoveUnitRequest>) -> Answer<pb::MoveUnitResponse> {
        write(&self.writer, r).await
    }
    async fn reorganise_units(
        &self,
        r: Request<pb::ReorganiseUnitsRequest>,
    ) -> Answer<pb::ReorganiseUnitsResponse> {
        write(&self.writer, r).await
    }
    async fn create_office(
        &self,
        r: Request<pb::CreateOfficeRequest>,
    ) -> Answer<pb::CreateOfficeResponse> {
        write(&self.writer, r).await
    }
    async fn abolish_office(
        &self,
        r: Request<pb::AbolishOfficeRequest>,
    ) -> Answer<pb::AbolishOfficeResponse> {
        write(&self.writer, r).await
    }
    async fn start_holding(
        &self,
        r: Request<pb::StartHoldingRequest>,
    ) -> Answer<pb::StartHoldingResponse> {
        write(&self.writer, r).await
    }
    async fn end_holding(
        &self,
        r: Request<pb::EndHoldingRequest>,
    ) -> Answer<pb::EndHoldingResponse> {
        write(&self.writer, r).await
    }
    async fn define_model(
        &self,
        r: Request<pb::DefineModelRequest>,
    ) -> Answer<pb::DefineModelResponse> {
        write(&self.writer, r).await
    }
    async fn adopt_model(
        &self,
        r: Request<pb::AdoptModelRequest>,
    ) -> Answer<pb::AdoptModelResponse> {
        write(&self.writer, r).await
    }
    async fn withdraw_model(
        &self,
        r: Request<pb::WithdrawModelRequest>,
    ) -> Answer<pb::WithdrawModelResponse> {
        write(&self.writer, r).await
    }
    async fn open_term(&self, r: Request<pb::OpenTermRequest>) -> Answer<pb::OpenTermResponse> {
        write(&self.writer, r).await
    }
    async fn import_records(
        &self,
        r: Request<tonic::Streaming<pb::ImportRecordsRequest>>,
    ) -> Answer<pb::ImportRecordsResponse> {
        import_records(&self.writer, r).await
    }
}
