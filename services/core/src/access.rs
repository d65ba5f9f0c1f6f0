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

use futures::future::{Either, Ready};
use registry_access::{Access, Action, Identity};
use registry_proto::v1::access_service_server::{AccessService, AccessServiceServer};
use registry_proto::v1::{WhoAmIRequest, WhoAmIResponse};
use tonic::{Request, Response, Status};

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

/// The door of the call to `path` (`/package.Service/Method`).
fn door(path: &str) -> Door {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Door::Open,
        "registry.v1.QueryService" => Door::Action(Action::Read),
        "registry.v1.AuditService" => Door::Action(Action::Audit),
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
    access: Option<Arc<Access>>,
}

impl GateLayer {
    /// Decides calls by `access`; lets every call pass without one.
    pub fn new(access: Option<Arc<Access>>) -> Self {
        Self { access }
    }
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            access: self.access.clone(),
        }
    }
}

/// Authenticates calls and decides those that concern no unit (see the module).
#[derive(Clone, Debug)]
pub struct Gate<S> {
    inner: S,
    access: Option<Arc<Access>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Gate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, Self::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let Some(access) = &self.access else {
            return Either::Right(self.inner.call(request));
        };
        let door = door(request.uri().path());
        if door == Door::Open {
            return Either::Right(self.inner.call(request));
        }
        let refuse = |status: Status| Either::Left(futures::future::ready(Ok(status.into_http())));
        let certificate = match certificate_name(request.extensions()) {
            Ok(name) => name,
            Err(e) => return refuse(Status::from(e)),
        };
        let authorization = match request.headers().get(http::header::AUTHORIZATION) {
            None => None,
            Some(value) => match value.to_str() {
                Ok(text) => Some(text),
                Err(_) => {
                    return refuse(Status::unauthenticated(
                        "the authorization header is not text",
                    ))
                }
            },
        };
        let identity = match access.identify(certificate.as_deref(), authorization) {
            Ok(identity) => identity,
            Err(e) => {
                return refuse(Status::from(crate::ApiError::Unauthenticated(
                    e.to_string(),
                )))
            }
        };
        if let Err(retry_after) = access.admit(&identity) {
            return refuse(Status::from(crate::ApiError::TooManyCalls {
                who: identity.name.clone(),
                retry_after,
            }));
        }
        if let Door::Action(action) = door {
            if !access.allows(&identity, action) {
                let denied = registry_access::Denied::Action {
                    who: identity.name.clone(),
                    roles: identity.roles.clone(),
                    action,
                };
                return refuse(Status::from(crate::ApiError::from(denied)));
            }
        }
        request.extensions_mut().insert(Grant {
            access: Arc::clone(access),
            identity,
        });
        Either::Right(self.inner.call(request))
    }
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
    name_in(&leaf).map(Some).ok_or_else(|| {
        crate::ApiError::Unauthenticated(
            "the client certificate names no subject to record as the actor".into(),
        )
    })
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
        assert_eq!(seen, 43, "42 RPCs and WhoAmI");
        assert_eq!(door("/grpc.health.v1.Health/Check"), Door::Open);
    }
}
