//! The store's TLS, loaded once at start from `[security]`: the server side for the gRPC
//! and status ports, and the client side for PD, other stores and the deadlock detector.

use std::sync::Arc;

use security::rustls::ServerConfig;
use security::TlsMaterial;
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::config::{Config, ConfigError};

/// What the store's servers and clients need when TLS is on.
#[derive(Clone)]
pub struct StoreTls {
    /// The checked `[security]` files.
    pub material: Arc<TlsMaterial>,
    /// Servers: this store's certificate, client certificates required.
    pub server: Arc<ServerConfig>,
    /// Clients: the CA, and this store's certificate as the client certificate.
    pub client: ClientTlsConfig,
}

impl StoreTls {
    /// `None` when `[security]` leaves TLS off; a bad file is an error naming it.
    pub fn load(cfg: &Config) -> Result<Option<StoreTls>, ConfigError> {
        let Some(material) = cfg.tls()? else {
            return Ok(None);
        };
        let server = security::server::server_config(&material)?;
        let client = security::client::tonic_client_tls(&material);
        Ok(Some(StoreTls {
            material,
            server,
            client,
        }))
    }
}

/// The URL to dial `addr` (`host:port`) at, and the endpoint with TLS applied when on.
pub fn endpoint(addr: &str, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, String> {
    let url = security::client::url(addr, tls.is_some());
    let endpoint = Endpoint::from_shared(url).map_err(|e| format!("bad address {addr:?}: {e}"))?;
    match tls {
        Some(tls) => endpoint
            .tls_config(tls.clone())
            .map_err(|e| format!("TLS settings for {addr}: {e}")),
        None => Ok(endpoint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_security(security: security::SecurityConfig) -> Config {
        Config {
            security,
            ..Config::default()
        }
    }

    #[test]
    fn security_section_partial_is_refused_and_bad_files_are_named() {
        let partial = with_security(security::SecurityConfig {
            ca_path: "ca.pem".into(),
            ..Default::default()
        });
        let e = partial.validate().unwrap_err().to_string();
        assert!(e.contains("cert-path") && e.contains("key-path"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let certs =
            security::generate::generate_fleet_certs(dir.path(), "shoal-server", "c", 1).unwrap();
        let cfg = with_security(security::SecurityConfig::new(
            &certs.ca,
            &certs.server_cert,
            &certs.client_key,
        ));
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("client-key.pem"), "{e}");

        let good = with_security(security::SecurityConfig::new(
            &certs.ca,
            &certs.server_cert,
            &certs.server_key,
        ));
        good.validate().unwrap();
        assert!(StoreTls::load(&good).unwrap().is_some());
        assert!(StoreTls::load(&Config::default()).unwrap().is_none());
    }

    #[test]
    fn security_endpoints_follow_tls() {
        let plain = endpoint("127.0.0.1:1", None).unwrap();
        assert_eq!(plain.uri().scheme_str(), Some("http"));
        security::install_crypto_provider();
        let tls = ClientTlsConfig::new();
        let secure = endpoint("http://127.0.0.1:1", Some(&tls)).unwrap();
        assert_eq!(secure.uri().scheme_str(), Some("https"));
    }
}
