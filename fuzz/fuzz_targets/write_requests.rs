//! Every write RPC's request, as bytes off the wire, to the domain command the services would
//! decide: decoding and conversion never panic, whatever the fields hold; an error names a
//! field and quotes at most about 100 characters of what was sent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use registry_proto::v1 as pb;
use registry_service_core::WriteRequest;

/// Decodes `bytes` as `R` and converts it; checks the error's message is bounded.
fn convert<R: WriteRequest + Default>(bytes: &[u8]) {
    let Ok(request) = R::decode(bytes) else {
        return;
    };
    if let Err(e) = request.command("fuzz") {
        let status = tonic::Status::from(e);
        assert!(
            status.message().chars().count() <= 1_000,
            "{} characters in an error of {}",
            status.message().chars().count(),
            R::RPC
        );
    }
}

fuzz_target!(|input: (u8, &[u8])| {
    let (which, bytes) = input;
    match which % 20 {
        0 => convert::<pb::RegisterPersonRequest>(bytes),
        1 => convert::<pb::RenamePersonRequest>(bytes),
        2 => convert::<pb::AddPersonAliasRequest>(bytes),
        3 => convert::<pb::EstablishUnitRequest>(bytes),
        4 => convert::<pb::RenameUnitRequest>(bytes),
        5 => convert::<pb::MoveUnitRequest>(bytes),
        6 => convert::<pb::ReorganiseUnitsRequest>(bytes),
        7 => convert::<pb::CreateOfficeRequest>(bytes),
        8 => convert::<pb::AbolishOfficeRequest>(bytes),
        9 => convert::<pb::StartHoldingRequest>(bytes),
        10 => convert::<pb::EndHoldingRequest>(bytes),
        11 => convert::<pb::DefineModelRequest>(bytes),
        12 => convert::<pb::AdoptModelRequest>(bytes),
        13 => convert::<pb::WithdrawModelRequest>(bytes),
        14 => convert::<pb::OpenTermRequest>(bytes),
        15 => convert::<pb::CorrectPersonRequest>(bytes),
        16 => convert::<pb::CorrectOfficeRequest>(bytes),
        17 => convert::<pb::CorrectHoldingRequest>(bytes),
        18 => convert::<pb::RetractRecordRequest>(bytes),
        _ => {
            // An import stream's message: every record's request inside.
            if let Ok(message) = pb::ImportRecordsRequest::decode(bytes) {
                for record in message.records {
                    let _ = registry_service_core::import::command_of(&record, "fuzz");
                }
            }
        }
    }
});
