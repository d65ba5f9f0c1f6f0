//! The access layer: every call but health checking and reflection is authenticated before its
//! service sees it, and every call that concerns no unit is decided here.
//!
//! With a policy ([`registry_access::Access`], `--policy`), a call without a certificate or a
//! token, or with a bad one, is UNAUTHENTICATED; a read, an audit or an operation the caller's
//! roles do not allow is PERMISSION_DENIED, before the request is even decoded. A write passes
//! with its caller's [`Grant`] in the request's extensions: whether it may be recorded depends
//! on the units it touches on the days of its facts, in the registry as the commands before it
//! left it, so the writer decides it in its decision step ([`crate::Writer`]). Without a policy
//! every call passes, as before access control existed (loopback or `--allow-anonymous` only).
//!
//! A caller past its allowance of calls (the policy's `limits`) is RESOURCE_EXHAUSTED, with
//! the time to wait in a `google.rpc.RetryInfo` detail.
//!
//! [`AccessApi`] answers `WhoAmI`: what the server sees of its caller.

use std::sync::Arc;
use std::task::{Context, Poll};

use registry_access::{Access, Action, Identity};
use registry_proto::v1::access_service_server::{AccessService, AccessServiceServer};
use registry_proto::v1::{WhoAmIRequest, WhoAmIResponse};
use tonic::{Request, Response, Status};

use crate::access_log::AccessLog;

/// The policy in force, read from its file at start and again at SIGHUP ([`Policy::reload`]):
/// every call takes the one in force when it arrives.
#[derive(Debug)]
pub struct Policy {
    path: std::path::PathBuf,
    current: std::sync::RwLock<Arc<Access>>,
}

impl Policy {
    /// Reads the policy file at `path` (and the files it names).
    pub fn load(path: &std::path::Path) -> Result<Self, registry_access::PolicyError> {
        Ok(Self {
            path: path.to_owned(),
            current: std::sync::RwLock::new(Arc::new(Access::load(path)?)),
        })
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Access> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the files again; the new policy is in force for the next call. A policy that does
    /// not load leaves the one in force as it was. Callers' identities, decisions and
    /// allowances start afresh.
    pub fn reload(&self) -> Result<(), registry_access::PolicyError> {
        let access = Arc::new(Access::load(&self.path)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = access;
        Ok(())
    }
}

/// An authenticated caller under a policy: what the writer checks a write against.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The policy.
    pub access: Arc<Access>,
    /// The caller.
    pub identity: Arc<Identity>,
}

/// How a call is decided at the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Door {
    /// Health checking and reflection: open to every caller.
    Open,
    /// Any authenticated caller (`WhoAmI`; an unknown method, which the router answers
    /// UNIMPLEMENTED).
    Authenticated,
    /// An action that concerns no unit, decided here.
    Action(Action),
    /// A write: authenticated here, decided by the writer.
    Write,
}

/// The kind of auditors' page `path` asks for (`/ui/offices/…` is `offices`; `/ui` is `home`),
/// or `None` for a gRPC path.
pub fn web_page(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/ui")?;
    if rest.is_empty() || rest == "/" {
        return Some("home");
    }
    let rest = rest.strip_prefix('/')?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// The door of the call to `path` (`/package.Service/Method`).
fn door(path: &str) -> Door {
    // The auditors' pages read what the query service reads.
    if web_page(path).is_some() {
        return Door::Action(Action::Read);
    }
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Door::Open,
        "registry.v1.QueryService" => Door::Action(Action::Read),
        // A checkpoint and a consistency proof are hashes and sizes, which witnesses and
        // readers check, and a cosignature is taken only from a configured witness's key; an
        // inclusion proof carries the event.
        "registry.v1.AuditService" => match method {
            "GetCheckpoint" | "GetConsistencyProof" | "AddCosignature" => {
                Door::Action(Action::Read)
            }
            _ => Door::Action(Action::Audit),
        },
        "registry.v1.CommandService" => Door::Write,
        "registry.v1.AdminService" => match method {
            "RebuildProjections" | "GetStoreStats" => Door::Action(Action::Operate),
            _ => Door::Write,
        },
        _ => Door::Authenticated,
    }
}

/// The tower layer that puts [`Gate`] in front of the server's routes.
#[derive(Clone, Debug)]
pub struct GateLayer {
    policy: Option<Arc<Policy>>,
    log: Option<AccessLog>,
}

impl GateLayer {
    /// Decides calls by `policy` (lets every call pass without one), logging each to `log`.
    pub fn new(policy: Option<Arc<Policy>>, log: Option<AccessLog>) -> Self {
        Self { policy, log }
    }
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            policy: self.policy.clone(),
            log: self.log.clone(),
        }
    }
}

/// Authenticates calls, decides those that concern no unit and logs them (see the module).
#[derive(Clone, Debug)]
pub struct Gate<S> {
    inner: S,
    policy: Option<Arc<Policy>>,
    log: Option<AccessLog>,
}

/// Who a call comes from, as the door sees it.
enum Caller {
    /// The caller under a policy.
    Identified(Arc<Identity>),
    /// No policy (or an open door): at most the name in its certificate, looked up for the log.
    Unidentified,
}

impl<S, B, R> tower::Service<http::Request<B>> for Gate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone waits for readiness; the one made ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = std::time::Instant::now();
        let door = door(request.uri().path());
        let caller = match &self.policy {
            Some(policy) if door != Door::Open => {
                let access = policy.current();
                admit(&access, door, &request).map(|identity| {
                    tracing::Span::current().record("caller", identity.name.as_str());
                    request.extensions_mut().insert(Grant {
                        access,
                        identity: Arc::clone(&identity),
                    });
                    Caller::Identified(identity)
                })
            }
            _ => Ok(Caller::Unidentified),
        };
        let web = web_page(request.uri().path()).is_some();
        let Some(log) = self.log.clone() else {
            return match caller {
                Ok(_) => Box::pin(inner.call(request)),
                Err(refusal) => Box::pin(futures::future::ready(Ok(refused(&refusal.0, web)))),
            };
        };
        let time = crate::access_log::now();
        let rpc = request.uri().path().to_owned();
        let peer = peer_address(request.extensions());
        // A certificate naming nobody is refused where it matters, by a write's `caller`.
        let certified = match caller {
            Ok(Caller::Unidentified) => certificate_name(request.extensions()).ok().flatten(),
            _ => None,
        };
        let on_behalf_of = request.headers().get(crate::serve::ACTOR_HEADER).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(100)
                .collect()
        });
        Box::pin(async move {
            let (outcome, resources, who) = match caller {
                Err(refusal) => {
                    let (status, who) = *refusal;
                    (
                        Ok(refused(&status, web)),
                        Vec::new(),
                        who.map(|w| (w.name.clone(), w.proof.name())),
                    )
                }
                Ok(caller) => {
                    let (outcome, resources) =
                        crate::access_log::collecting(inner.call(request)).await;
                    let who = match caller {
                        Caller::Identified(identity) => {
                            Some((identity.name.clone(), identity.proof.name()))
                        }
                        Caller::Unidentified => certified.map(|n| (n, "certificate")),
                    };
                    (outcome, resources, who)
                }
            };
            let status = match &outcome {
                Ok(response) => status_of(response),
                Err(_) => tonic::Code::Internal,
            };
            log.write(&crate::access_log::Line {
                time,
                identity: who.as_ref().map(|(name, _)| name.as_str()),
                proof: who.as_ref().map_or("none", |(_, proof)| proof),
                on_behalf_of,
                rpc: &rpc,
                resources,
                status: code_name(status),
                micros: started.elapsed().as_micros() as u64,
                peer,
            })
            .await;
            outcome
        })
    }
}

/// The response refusing a call: a gRPC status, or for a page (`web`) the HTTP status that
/// fits with the gRPC status's message (its headers carry the gRPC status too, for the log).
fn refused<R: Default>(status: &Status, web: bool) -> http::Response<R> {
    let mut response = status.clone().into_http();
    if web {
        response.headers_mut().remove(http::header::CONTENT_TYPE);
        *response.status_mut() = match status.code() {
            tonic::Code::Unauthenticated => http::StatusCode::UNAUTHORIZED,
            tonic::Code::PermissionDenied => http::StatusCode::FORBIDDEN,
            tonic::Code::ResourceExhausted => http::StatusCode::TOO_MANY_REQUESTS,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.code() == tonic::Code::Unauthenticated {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
    }
    response
}

/// A call refused at the door: its status, and its caller where it was identified.
type Refusal = Box<(Status, Option<Arc<Identity>>)>;

/// The caller of `request` under `access`, admitted through `door`: authenticated, within its
/// allowance, and allowed the door's action; else the status refusing it (with the caller,
/// where it was identified).
fn admit<B>(
    access: &Access,
    door: Door,
    request: &http::Request<B>,
) -> Result<Arc<Identity>, Refusal> {
    let refuse = |e: crate::ApiError| Status::from(e);
    let certificate =
        certificate_name(request.extensions()).map_err(|e| Box::new((refuse(e), None)))?;
    let authorization = match request.headers().get(http::header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            Box::new((
                Status::unauthenticated("the authorization header is not text"),
                None,
            ))
        })?),
    };
    let identity = access
        .identify(certificate.as_deref(), authorization)
        .map_err(|e| {
            Box::new((
                refuse(crate::ApiError::Unauthenticated(e.to_string())),
                None,
            ))
        })?;
    let refused = |e: crate::ApiError| Box::new((refuse(e), Some(Arc::clone(&identity))));
    if let Err(retry_after) = access.admit(&identity) {
        return Err(refused(crate::ApiError::TooManyCalls {
            who: identity.name.clone(),
            retry_after,
        }));
    }
    if let Door::Action(action) = door {
        if !access.allows(&identity, action) {
            crate::metrics::denied(action.name());
            return Err(refused(crate::ApiError::from(
                registry_access::Denied::Action {
                    who: identity.name.clone(),
                    roles: identity.roles.clone(),
                    action,
                },
            )));
        }
    }
    Ok(identity)
}

/// The status a response carries in its headers (an error answered at once), else OK (the
/// handler answered; the status follows the body).
pub(crate) fn status_of<R>(response: &http::Response<R>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from)
}

/// The name gRPC gives a status code (`PERMISSION_DENIED`).
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The caller's address, on a plaintext or a TLS connection.
fn peer_address(extensions: &http::Extensions) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
        .map(|a| a.to_string())
}

/// The name in the certificate the caller presented under mutual TLS (`None` on a connection
/// without one): its subject's common name, else its whole subject (RFC 4514). A certificate
/// the server's client CA signed that names nobody is refused.
pub fn certificate_name(extensions: &http::Extensions) -> Result<Option<String>, crate::ApiError> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let Some(leaf) = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .and_then(|chain| chain.first().cloned())
    else {
        return Ok(None);
    };
    named(&leaf).map(Some).ok_or_else(|| {
        crate::ApiError::Unauthenticated(
            "the client certificate names no subject to record as the actor".into(),
        )
    })
}

/// The name in a certificate ([`name_in`]), parsed once per certificate: a connection's calls
/// all present the same one.
fn named(der: &[u8]) -> Option<String> {
    type Names = std::sync::Mutex<
        std::collections::HashMap<Vec<u8>, Option<String>, foldhash::fast::RandomState>,
    >;
    /// The most certificates remembered; past it the cache starts again.
    const MAX_NAMES: usize = 10_000;
    static NAMES: std::sync::OnceLock<Names> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(Names::default);
    if let Some(name) = names.lock().unwrap_or_else(|e| e.into_inner()).get(der) {
        return name.clone();
    }
    let name = name_in(der);
    let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
    if names.len() >= MAX_NAMES {
        names.clear();
    }
    names.insert(der.to_vec(), name.clone());
    name
}

/// The common name of a certificate's subject, else the whole subject (RFC 4514); `None` when
/// it does not parse or names nobody.
fn name_in(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    let subject = certificate.tbs_certificate().subject();
    match subject.common_name() {
        Ok(Some(name)) => Some(name.value().into_owned()),
        _ => (!subject.is_empty()).then(|| subject.to_string()),
    }
}

/// `AccessService`: what the server sees of its caller.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessApi;

impl AccessApi {
    /// The service, ready to add to a server's routes.
    pub fn server() -> AccessServiceServer<Self> {
        AccessServiceServer::new(Self)
    }
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        crate::serve::call("WhoAmI", "", async {
            let Some(grant) = request.extensions().get::<Grant>() else {
                // No policy: every caller may do anything.
                let certified = certificate_name(request.extensions())?;
                return Ok(WhoAmIResponse {
                    proof: if certified.is_some() {
                        "certificate"
                    } else {
                        "none"
                    }
                    .into(),
                    name: certified.unwrap_or_else(|| "anonymous".into()),
                    policy: false,
                    actions: Action::ALL.iter().map(|a| a.name().to_owned()).collect(),
                    ..Default::default()
                });
            };
            let who = &grant.identity;
            Ok(WhoAmIResponse {
                name: who.name.clone(),
                proof: who.proof.name().into(),
                policy: true,
                roles: who.roles.clone(),
                agency: who.agency.clone().unwrap_or_default(),
                scopes: who.scopes.iter().map(|u| u.resource_name()).collect(),
                actions: Action::ALL
                    .iter()
                    .filter(|a| grant.access.allows(who, **a))
                    .map(|a| a.name().to_owned())
                    .collect(),
                expires: who.expires.map(prost_types::Timestamp::from),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_api_has_its_door() {
        let descriptors = <prost_types::FileDescriptorSet as prost::Message>::decode(
            registry_proto::FILE_DESCRIPTOR_SET,
        )
        .unwrap_or_default();
        let mut seen = 0;
        for file in &descriptors.file {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                for method in &service.method {
                    let path = format!("/{name}/{}", method.name());
                    let expected = match (service.name(), method.name()) {
                        ("QueryService", _) => Door::Action(Action::Read),
                        (
                            "AuditService",
                            "GetCheckpoint" | "GetConsistencyProof" | "AddCosignature",
                        ) => Door::Action(Action::Read),
                        ("AuditService", _) => Door::Action(Action::Audit),
                        ("AdminService", "RebuildProjections" | "GetStoreStats") => {
                            Door::Action(Action::Operate)
                        }
                        ("CommandService" | "AdminService", _) => Door::Write,
                        ("AccessService", _) => Door::Authenticated,
                        (other, _) => panic!("a service the access layer does not know: {other}"),
                    };
                    assert_eq!(door(&path), expected, "{path}");
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 50, "49 RPCs and WhoAmI");
        assert_eq!(door("/grpc.health.v1.Health/Check"), Door::Open);
    }
}
