//! The server side: a rustls config that demands a client certificate from the CA (mutual
//! TLS), optionally restricted to listed Common Names, and a stream of accepted TLS
//! connections for tonic's `serve_with_incoming*`.
//!
//! The CN check lives in the certificate verifier rather than in a per-request interceptor:
//! a refused certificate then fails the handshake itself, so it covers every protocol on the
//! port (gRPC, the HTTP APIs over HTTP/1.1 and HTTP/2, paths no router knows) and cannot be
//! forgotten on a service added later.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use crate::error::SecurityError;
use crate::load::{common_names, TlsMaterial};

/// A handshake taking longer is abandoned, so a silent peer cannot hold a slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections waiting for the server to take them.
const ACCEPT_QUEUE: usize = 64;

/// The rustls server config: this process's certificate, client certificates required and
/// verified against the CA (and `allowed_cn`), ALPN `h2` then `http/1.1` (gRPC and the HTTP
/// APIs share ports).
pub fn server_config(m: &TlsMaterial) -> Result<Arc<ServerConfig>, SecurityError> {
    let err = |detail: String| SecurityError::Config {
        cert_path: m.cert_path.clone(),
        detail,
    };
    let provider = crate::crypto_provider();
    let roots = m.root_store()?;
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| err(e.to_string()))?;
    let verifier = Arc::new(AllowedCnVerifier {
        inner: webpki,
        allowed: m.allowed_cn.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(m.cert_chain.clone(), m.key.clone_key())
        .map_err(|e| err(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// WebPKI client verification, then the CN allow-list.
#[derive(Debug)]
struct AllowedCnVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedCnVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed.is_empty() {
            return Ok(verified);
        }
        let names = common_names(end_entity.as_ref());
        if names.iter().any(|cn| self.allowed.contains(cn)) {
            Ok(verified)
        } else {
            warn!(
                common_names = ?names,
                allowed = ?self.allowed,
                "client certificate refused: its CN is not in cert-allowed-cn"
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts connections on `listener` (Nagle off: small RPCs must not wait for delayed ACKs)
/// and yields those whose TLS handshake succeeded. Handshakes run concurrently, so a slow
/// or hostile peer does not hold up others; a refused one is logged and dropped. Accepting
/// stops once the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> impl Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send + 'static {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Err(e) = tcp.set_nodelay(true) {
                debug!(%peer, error = %e, "cannot turn Nagle off");
            }
            tokio::spawn(handshake(acceptor.clone(), tcp, peer, tx.clone()));
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<std::io::Result<TlsStream<TcpStream>>>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let _ = tx.send(Ok(tls)).await;
        }
        Ok(Err(e)) => warn!(%peer, error = %e, "TLS handshake failed; connection dropped"),
        Err(_) => warn!(%peer, "TLS handshake timed out; connection dropped"),
    }
}
