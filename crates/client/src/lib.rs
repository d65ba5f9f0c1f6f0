//! A typed Rust client of the registry's gRPC API (`registry.v1`), used by `regctl` and the
//! end-to-end tests.
//!
//! [`Client`] holds one HTTP/2 channel and hands out the four service clients, each of which
//! sends the caller's name in `x-registry-actor` (recorded with every write). Request messages
//! are the generated ones, re-exported as [`v1`]; [`request_id`] mints an idempotency key.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use registry_client::{request_id, v1, Client};
//! let client = Client::connect("http://127.0.0.1:50051").await?.with_actor("registrar@province")?;
//! let person = client
//!     .command()
//!     .register_person(v1::RegisterPersonRequest {
//!         request_id: request_id(),
//!         display_name: "Nguyễn Văn A".into(),
//!         ..Default::default()
//!     })
//!     .await?
//!     .into_inner();
//! # Ok(()) }
//! ```

use std::time::Duration;

use thiserror::Error;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// The compression a client asks for with [`Client::with_compression`].
const GZIP: CompressionEncoding = CompressionEncoding::Gzip;

pub use registry_proto::v1;
use v1::access_service_client::AccessServiceClient;
use v1::admin_service_client::AdminServiceClient;
use v1::audit_service_client::AuditServiceClient;
use v1::command_service_client::CommandServiceClient;
use v1::query_service_client::QueryServiceClient;

/// The metadata key naming the caller.
pub const ACTOR_HEADER: &str = "x-registry-actor";

/// Why a client could not be made.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The address is not a URI.
    #[error("{0:?} is not an address such as http://127.0.0.1:50051")]
    BadAddress(String),
    /// The token cannot be sent as metadata.
    #[error("the token must be printable ASCII (a JWT)")]
    BadToken,
    /// The actor name cannot be sent as metadata.
    #[error("the actor name must not contain control characters")]
    BadActor(String),
    /// The TLS settings could not be used.
    #[error("TLS for {address}: {source}")]
    Tls {
        /// Where.
        address: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The server could not be reached.
    #[error(
        "cannot connect to {address}: {}{}",
        causes(source),
        hint(source, address)
    )]
    Connect {
        /// Where.
        address: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// An error and its causes, outermost first ("transport error: tcp connect error: Connection
/// refused (os error 111)"), each said once.
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
        next = e.source();
    }
    said.join(": ")
}

/// What to try when a connection failed, from its cause: nothing listening, a name not
/// resolved, TLS spoken to a plaintext server.
fn hint(error: &(dyn std::error::Error + 'static), address: &str) -> String {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return " (nothing listens there: is registryd running, and on this address? \
                         see its --listen)"
                    .into();
            }
            if io.to_string().contains("lookup address") {
                return " (the host name does not resolve: check the address)".into();
            }
            // An io::Error hides the error it wraps from `source`.
            let tls = io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
            if tls && address.starts_with("https://") {
                return " (the TLS handshake failed: if the server speaks plaintext, use http://; \
                         else check --tls-ca)"
                    .into();
            }
        }
        if e.downcast_ref::<rustls::Error>().is_some() && address.starts_with("https://") {
            return " (the TLS handshake failed: if the server speaks plaintext, use http://; \
                     else check --tls-ca)"
                .into();
        }
        next = e.source();
    }
    String::new()
}

/// An address as given (`host:port`, `http://host:port` or `https://host:port`) as a URI:
/// without a scheme, `https://` when TLS settings are given, else `http://`.
pub fn address_uri(address: &str, tls: &Tls) -> String {
    if address.contains("://") {
        address.to_owned()
    } else if tls.ca.is_some() || tls.identity.is_some() {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    }
}

/// Adds the actor header, and the bearer token where there is one, to every request.
#[derive(Clone)]
pub struct Actor {
    name: MetadataValue<Ascii>,
    bearer: Option<MetadataValue<Ascii>>,
}

impl tonic::service::Interceptor for Actor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(ACTOR_HEADER, self.name.clone());
        if let Some(bearer) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        Ok(request)
    }
}

/// The channel of the service clients: the connection with the actor header added.
pub type Inner = InterceptedService<Channel, Actor>;

/// A connection to a registry server.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    actor: Actor,
    max_message_bytes: usize,
    /// Whether answers are asked for gzip-compressed.
    compressed: bool,
}

/// Makes aws-lc-rs the process's TLS crypto provider, unless one is chosen already: the
/// dependency tree enables two, so rustls cannot choose alone.
pub fn use_aws_lc() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// TLS for an `https://` address: the CA that signed the server's certificate (PEM; the
/// system's roots when `None`) and, for a server that accepts only known clients, this
/// client's certificate and key (PEM).
#[derive(Clone, Debug, Default)]
pub struct Tls {
    /// The CA of the server's certificate.
    pub ca: Option<Vec<u8>>,
    /// The client's certificate and private key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl Client {
    /// Connects to `address` (`http://host:port`, or `https://host:port` checked against the
    /// system's root certificates).
    pub async fn connect(address: &str) -> Result<Self, ClientError> {
        Self::connect_with(address, &Tls::default()).await
    }

    /// Connects to `address` ([`address_uri`]); an `https://` address is checked and
    /// authenticated with `tls`.
    pub async fn connect_with(address: &str, tls: &Tls) -> Result<Self, ClientError> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let address = &address_uri(address, tls);
        let mut endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|_| ClientError::BadAddress(address.to_owned()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if address.starts_with("https://") {
            use_aws_lc();
            let mut config = match &tls.ca {
                Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
                None => ClientTlsConfig::new().with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|source| ClientError::Tls {
                    address: address.to_owned(),
                    source,
                })?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                address: address.to_owned(),
                source,
            })?;
        Ok(Self {
            channel,
            actor: Actor {
                name: MetadataValue::from_static("anonymous"),
                bearer: None,
            },
            max_message_bytes: 64 << 20,
            compressed: false,
        })
    }

    /// The same connection, asking for gzip-compressed answers (histories, listings and
    /// exports shrink several times; small answers cost a little more CPU) and sending its
    /// writes compressed.
    pub fn with_compression(self) -> Self {
        Self {
            compressed: true,
            ..self
        }
    }

    /// The same connection, recording writes as made by `actor`: any name, Vietnamese
    /// included, sent as its UTF-8 bytes; a name with control characters cannot be sent.
    pub fn with_actor(self, actor: &str) -> Result<Self, ClientError> {
        let value = MetadataValue::try_from(actor.as_bytes())
            .map_err(|_| ClientError::BadActor(actor.to_owned()))?;
        Ok(Self {
            actor: Actor {
                name: value,
                ..self.actor
            },
            ..self
        })
    }

    /// The same connection, authenticated by a bearer token (a JWT from the identity provider
    /// the server's policy trusts), sent as `authorization: Bearer …` with every call.
    pub fn with_token(self, token: &str) -> Result<Self, ClientError> {
        let value = MetadataValue::try_from(format!("Bearer {}", token.trim()))
            .map_err(|_| ClientError::BadToken)?;
        Ok(Self {
            actor: Actor {
                bearer: Some(value),
                ..self.actor
            },
            ..self
        })
    }

    /// The access service (`WhoAmI`).
    pub fn access(&self) -> AccessServiceClient<Inner> {
        AccessServiceClient::with_interceptor(self.channel.clone(), self.actor.clone())
    }

    /// The command service.
    pub fn command(&self) -> CommandServiceClient<Inner> {
        let client =
            CommandServiceClient::with_interceptor(self.channel.clone(), self.actor.clone())
                .max_decoding_message_size(self.max_message_bytes);
        if self.compressed {
            client.accept_compressed(GZIP).send_compressed(GZIP)
        } else {
            client
        }
    }

    /// The query service.
    pub fn query(&self) -> QueryServiceClient<Inner> {
        let client = QueryServiceClient::with_interceptor(self.channel.clone(), self.actor.clone())
            .max_decoding_message_size(self.max_message_bytes);
        if self.compressed {
            client.accept_compressed(GZIP).send_compressed(GZIP)
        } else {
            client
        }
    }

    /// The audit service.
    pub fn audit(&self) -> AuditServiceClient<Inner> {
        let client = AuditServiceClient::with_interceptor(self.channel.clone(), self.actor.clone())
            .max_decoding_message_size(self.max_message_bytes);
        if self.compressed {
            client.accept_compressed(GZIP).send_compressed(GZIP)
        } else {
            client
        }
    }

    /// The admin service.
    pub fn admin(&self) -> AdminServiceClient<Inner> {
        let client = AdminServiceClient::with_interceptor(self.channel.clone(), self.actor.clone())
            .max_decoding_message_size(self.max_message_bytes);
        if self.compressed {
            client.accept_compressed(GZIP).send_compressed(GZIP)
        } else {
            client
        }
    }

    /// gRPC health checking.
    pub fn health(&self) -> tonic_health::pb::health_client::HealthClient<Channel> {
        tonic_health::pb::health_client::HealthClient::new(self.channel.clone())
    }
}

/// A fresh idempotency key (a UUID v7).
pub fn request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
