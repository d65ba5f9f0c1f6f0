//! The gRPC ceiling: a tonic server (the workspace's tonic version) that does no work of its own.
//! It answers `grpc.health.v1.Health/Check`, and, given `--answers FILE` (written by
//! [`registry_bench::write_answers`]), answers the methods named there with answers recorded
//! from `registryd`, in turn, from memory. Driven by the same load generator as `registryd`, it
//! shows what this machine's gRPC stack costs per call, and what it costs to carry and decode
//! answers as large as the registry's, without finding them. Prints `listening on ADDRESS` and
//! serves until killed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

/// The allocator `registryd` runs on: a ceiling on another allocator would measure the
/// allocators too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let answers = match std::env::args().skip_while(|a| a != "--answers").nth(1) {
        Some(path) => registry_bench::read_answers(std::path::Path::new(&path))?,
        None => Vec::new(),
    };
    let by_path: HashMap<String, Recorded> = answers
        .into_iter()
        .map(|(path, bodies)| {
            let bodies = bodies.into_iter().map(Bytes::from).collect();
            (path, Recorded::new(bodies))
        })
        .collect();
    let canned = Canned(Arc::new(by_path));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        let (_reporter, health) = tonic_health::server::health_reporter();
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(As::<Query>::new(canned.clone()))
            .add_service(As::<Audit>::new(canned))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            )
            .await?;
        Ok(())
    })
}

/// The recorded answers of one method, handed out in turn.
struct Recorded {
    bodies: Vec<Bytes>,
    next: AtomicUsize,
}

impl Recorded {
    fn new(bodies: Vec<Bytes>) -> Self {
        Self {
            bodies,
            next: AtomicUsize::new(0),
        }
    }

    fn next(&self) -> Bytes {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.bodies[n % self.bodies.len()].clone()
    }
}

/// Recorded answers by request path (`/registry.v1.AuditService/ListResourceHistory`).
#[derive(Clone)]
struct Canned(Arc<HashMap<String, Recorded>>);

/// The routes of `Canned` under one gRPC service name, so that tonic routes that service's
/// paths to it.
#[derive(Clone)]
struct As<N> {
    canned: Canned,
    name: std::marker::PhantomData<N>,
}

impl<N> As<N> {
    fn new(canned: Canned) -> Self {
        Self {
            canned,
            name: std::marker::PhantomData,
        }
    }
}

#[derive(Clone)]
struct Query;
#[derive(Clone)]
struct Audit;

impl NamedService for As<Query> {
    const NAME: &'static str = "registry.v1.QueryService";
}

impl NamedService for As<Audit> {
    const NAME: &'static str = "registry.v1.AuditService";
}

impl<N, B> Service<http::Request<B>> for As<N>
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let canned = self.canned.clone();
        let path = request.uri().path().to_owned();
        Box::pin(async move {
            if !canned.0.contains_key(&path) {
                return Ok(
                    Status::unimplemented(format!("no answers recorded for {path}")).into_http(),
                );
            }
            let mut grpc = tonic::server::Grpc::new(Raw);
            Ok(grpc.unary(Answer { canned, path }, request).await)
        })
    }
}

/// Answers one call with the next recorded answer of its path.
struct Answer {
    canned: Canned,
    path: String,
}

impl tonic::server::UnaryService<()> for Answer {
    type Response = Bytes;
    type Future = std::future::Ready<Result<Response<Bytes>, Status>>;

    fn call(&mut self, _: Request<()>) -> Self::Future {
        std::future::ready(Ok(Response::new(self.canned.0[&self.path].next())))
    }
}

/// A codec that skips the request and writes the recorded answer's bytes as they are.
#[derive(Clone, Copy)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}
