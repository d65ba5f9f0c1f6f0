//! TLS as the registry serves it: the server's certificate, and under mutual TLS the clients' CA
//! with its certificate revocation lists (`--tls-crl`), built as a rustls configuration of our
//! own (tonic's takes no CRL), read again at SIGHUP, and served over connections this module
//! accepts.
//!
//! A revoked certificate, one from a foreign CA, and (where a certificate is required) none at
//! all fail the handshake: no call is made. Where the policy accepts bearer tokens a client
//! certificate is optional, and a caller without one is authenticated by its token or refused
//! as UNAUTHENTICATED ([`crate::access`]). Handshakes run in tasks of their own, a bounded
//! number at once, so a slow or silent client never holds up the next connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The files TLS is served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA (or CAs) of client certificates: mutual TLS.
    pub client_ca: Option<PathBuf>,
    /// Revocation lists of the client CA (PEM), each checked at every handshake.
    pub crls: Vec<PathBuf>,
    /// Whether a client may connect without a certificate (bearer tokens are accepted).
    pub client_optional: bool,
}

/// A TLS configuration that cannot be used: the option, the file and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{option}: {problem}")]
pub struct TlsError {
    /// The option naming the file.
    pub option: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn error(
    option: &'static str,
    path: &std::path::Path,
    problem: impl std::fmt::Display,
) -> TlsError {
    TlsError {
        option,
        problem: format!("{}: {problem}", path.display()),
    }
}

impl TlsFiles {
    /// Reads and checks the files: the rustls configuration to serve with.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        // The dependency tree enables two crypto providers, so rustls cannot choose alone.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| error("--tls-cert", &self.cert, e))?;
        if chain.is_empty() {
            return Err(error(
                "--tls-cert",
                &self.cert,
                "holds no certificate (PEM)",
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                error("--tls-key", &self.key, "holds no private key (PEM)")
            }
            e => error("--tls-key", &self.key, e),
        })?;
        let builder = ServerConfig::builder();
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                let certificates = CertificateDer::pem_file_iter(ca)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|e| error("--tls-client-ca", ca, e))?;
                for certificate in certificates {
                    roots
                        .add(certificate)
                        .map_err(|e| error("--tls-client-ca", ca, e))?;
                }
                if roots.is_empty() {
                    return Err(error("--tls-client-ca", ca, "holds no certificate (PEM)"));
                }
                let mut crls = Vec::new();
                for path in &self.crls {
                    let found = CertificateRevocationListDer::pem_file_iter(path)
                        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                        .map_err(|e| error("--tls-crl", path, e))?;
                    if found.is_empty() {
                        return Err(error("--tls-crl", path, "holds no revocation list (PEM)"));
                    }
                    crls.extend(found);
                }
                let mut verifier = WebPkiClientVerifier::builder(Arc::new(roots)).with_crls(crls);
                if self.client_optional {
                    verifier = verifier.allow_unauthenticated();
                }
                let verifier = verifier.build().map_err(|e| TlsError {
                    option: if self.crls.is_empty() {
                        "--tls-client-ca"
                    } else {
                        "--tls-crl"
                    },
                    problem: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| error("--tls-key", &self.key, e))?;
        // h2 for gRPC and browsers; HTTP/1.1 for the auditors' pages to clients without h2.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// TLS as served: its files, and the configuration read from them at start or at the last
/// SIGHUP ([`Served::reload`]); each new connection takes the one in force.
#[derive(Debug)]
pub struct Served {
    files: std::sync::Mutex<TlsFiles>,
    current: std::sync::RwLock<Arc<ServerConfig>>,
}

impl Served {
    /// Reads and checks `files`.
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let config = files.server_config()?;
        Ok(Self {
            files: std::sync::Mutex::new(files),
            current: std::sync::RwLock::new(config),
        })
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the files again (a new certificate, CA or revocation list), with the client
    /// certificate optional or not as `client_optional` says (the policy may have come to
    /// accept tokens or stopped). New connections are made with it; connections already made
    /// keep theirs. Files that do not load leave the configuration in force as it was.
    pub fn reload(&self, client_optional: bool) -> Result<(), TlsError> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let next = TlsFiles {
            client_optional,
            ..files.clone()
        };
        let config = next.server_config()?;
        *files = next;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }
}

/// The most handshakes under way at once; more connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS connections made on `listener`, as a stream for tonic's `serve_with_incoming`. A
/// handshake that fails is logged and dropped; the stream never yields an error (one would
/// stop the server).
pub fn incoming(
    listener: TcpListener,
    served: Arc<Served>,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(MAX_HANDSHAKES);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = sender.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, sender) = (TlsAcceptor::from(served.current()), sender.clone());
            tokio::spawn(async move {
                let _slot = slot;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = sender.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) if refused_credentials(&e) => {
                        tracing::warn!(%peer, error = %e, "TLS handshake refused");
                    }
                    // Probes and clients speaking plaintext: not worth a warning each.
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Whether a failed handshake refused the client's credentials (a revoked certificate, one of
/// a foreign CA, none where one is required), rather than failing for want of TLS.
fn refused_credentials(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}
