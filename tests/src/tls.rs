//! TLS for fleets: certificates generated with rcgen into the fleet's directory, the
//! `[security]` table both configs get, and HTTP clients that present a certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use security::generate::{CertAuthority, FleetCerts};
use security::rustls;
use security::{SecurityConfig, TlsMaterial};

use crate::pd_api::PdApi;

/// How a TLS fleet is secured: PD and stores present `server.pem` (CN `shoal-server`); the
/// fleet's own clients present `client.pem` (CN `shoal-client`).
#[derive(Clone, Debug, Default)]
pub struct FleetTls {
    /// `cert-allowed-cn` of PD and the stores (empty: any certificate from the CA).
    pub cert_allowed_cn: Vec<String>,
    /// More client certificates signed by the fleet's CA, one per Common Name
    /// ([`extra_client_cert`] finds them).
    pub extra_client_cns: Vec<String>,
}

/// Common Name of the certificate PD and the stores present.
pub const SERVER_CN: &str = "shoal-server";
/// Common Name of the certificate the fleet's clients present.
pub const CLIENT_CN: &str = "shoal-client";

/// With `tls`, a CA (`ca.pem`), `server.pem` and `client.pem` in `<dir>/certs`, plus one
/// certificate per [`FleetTls::extra_client_cns`] (see [`extra_client_cert`]).
pub fn generate(dir: &Path, tls: Option<&FleetTls>) -> Result<Option<FleetCerts>> {
    let Some(tls) = tls else {
        return Ok(None);
    };
    let certs_dir = dir.join("certs");
    std::fs::create_dir_all(&certs_dir)?;
    let ca = CertAuthority::new("Shoal fleet test CA")?;
    let ca_path = certs_dir.join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem())?;
    let (server_cert, server_key) = ca.issue(SERVER_CN, 30)?.write(&certs_dir, "server")?;
    let (client_cert, client_key) = ca.issue(CLIENT_CN, 30)?.write(&certs_dir, "client")?;
    for cn in &tls.extra_client_cns {
        ca.issue(cn, 30)?
            .write(&certs_dir, &format!("client-{cn}"))?;
    }
    Ok(Some(FleetCerts {
        ca: ca_path,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }))
}

/// The certificate and key of extra client CN `cn` of a fleet whose CA is `certs.ca`.
pub fn extra_client_cert(certs: &FleetCerts, cn: &str) -> (PathBuf, PathBuf) {
    let dir = certs.ca.parent().unwrap_or(Path::new("."));
    (
        dir.join(format!("client-{cn}.pem")),
        dir.join(format!("client-{cn}-key.pem")),
    )
}

/// The `[security]` table of PD's and the stores' configs (empty for plaintext).
pub fn security_table(certs: Option<&FleetCerts>, tls: Option<&FleetTls>) -> String {
    let (Some(certs), Some(tls)) = (certs, tls) else {
        return String::new();
    };
    let allowed: Vec<String> = tls
        .cert_allowed_cn
        .iter()
        .map(|cn| format!("{cn:?}"))
        .collect();
    format!(
        "\n\n[security]\nca-path = {:?}\ncert-path = {:?}\nkey-path = {:?}\ncert-allowed-cn = [{}]\n",
        certs.ca.display().to_string(),
        certs.server_cert.display().to_string(),
        certs.server_key.display().to_string(),
        allowed.join(", ")
    )
}

/// A rustls client config trusting `ca` and presenting `cert`/`key`.
pub fn client_tls(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let material =
        TlsMaterial::load(&SecurityConfig::new(ca, cert, key))?.context("TLS material expected")?;
    Ok(security::client::rustls_client_config(&material)?)
}

/// A rustls client config trusting `ca` and presenting no certificate.
pub fn client_tls_without_cert(ca: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(ca).with_context(|| format!("read {}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(&pem)? {
        roots.add(cert)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(security::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn rustls_pemfile_certs(pem: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .context("CA file is not PEM")?;
    Ok(certs)
}

/// PD's HTTP API at `addr`, over https with the client certificate on a TLS fleet.
pub fn pd_api(addr: &str, certs: Option<&FleetCerts>) -> Result<PdApi> {
    Ok(match certs {
        Some(c) => PdApi::with_tls(addr, client_tls(&c.ca, &c.client_cert, &c.client_key)?),
        None => PdApi::new(addr),
    })
}
