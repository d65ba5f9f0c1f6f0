//! The registry's public gRPC API, `registry.v1`, as Rust types and tonic services.
//!
//! Generated at build time from `proto/registry/v1/*.proto` by `build.rs` (protox and
//! tonic-build). Only this crate, the service crates and the client know about protobuf: the
//! domain never sees these types.

#![allow(missing_docs, clippy::all)]

/// `registry.v1`: messages, enums, clients and servers.
pub mod v1 {
    tonic::include_proto!("registry.v1");
}

/// The encoded `FileDescriptorSet` of `registry.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/registry_v1_descriptor.bin"));
