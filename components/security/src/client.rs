//! The client side: tonic's TLS settings for gRPC channels, a rustls config for HTTP clients,
//! and URLs with the scheme TLS calls for.

use std::sync::Arc;

use rustls::ClientConfig;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::SecurityError;
use crate::load::TlsMaterial;

/// tonic channel TLS: servers are verified against the CA, and this process's certificate is
/// presented as the client certificate. The server name checked is the URL's host.
pub fn tonic_client_tls(m: &TlsMaterial) -> ClientTlsConfig {
    // tonic builds its rustls config with the process-wide provider.
    crate::install_crypto_provider();
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&m.ca_pem))
        .identity(Identity::from_pem(&m.cert_pem, &m.key_pem))
}

/// A rustls client config with the CA as the only root and this process's certificate as the
/// client certificate, for HTTP clients (ureq).
pub fn rustls_client_config(m: &TlsMaterial) -> Result<Arc<ClientConfig>, SecurityError> {
    let roots = m.root_store()?;
    let config = ClientConfig::builder_with_provider(crate::crypto_provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_root_certificates(roots)
                .with_client_auth_cert(m.cert_chain.clone(), m.key.clone_key())
        })
        .map_err(|e| SecurityError::Config {
            cert_path: m.cert_path.clone(),
            detail: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

/// `http` or `https`.
pub fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// `host:port` of an endpoint given as `host:port`, `http://host:port` or
/// `https://host:port` (a trailing `/` is dropped).
pub fn host_port(endpoint: &str) -> &str {
    let e = endpoint.trim();
    let e = e
        .strip_prefix("https://")
        .or_else(|| e.strip_prefix("http://"))
        .unwrap_or(e);
    e.trim_end_matches('/')
}

/// The endpoint as a URL whose scheme is decided by whether TLS is on, whatever scheme it
/// was written with (as TiKV's clients do).
pub fn url(endpoint: &str, tls: bool) -> String {
    format!("{}://{}", scheme(tls), host_port(endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_urls_follow_tls() {
        assert_eq!(url("127.0.0.1:2379", true), "https://127.0.0.1:2379");
        assert_eq!(
            url("http://127.0.0.1:2379/", true),
            "https://127.0.0.1:2379"
        );
        assert_eq!(url("https://pd:1", false), "http://pd:1");
        assert_eq!(host_port(" https://pd:1/ "), "pd:1");
    }
}
