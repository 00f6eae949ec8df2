//! A throwaway certificate authority and certificates signed by it (rcgen, ECDSA P-256), for
//! `shoal-ctl cert generate` (`make run TLS=1`) and tests. Every certificate names
//! `127.0.0.1` and `localhost` and may serve and authenticate clients, since stores are both.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::error::SecurityError;

/// A CA whose key stays in memory, to sign certificates.
pub struct CertAuthority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its private key, PEM-encoded.
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The files [`generate_fleet_certs`] wrote.
#[derive(Clone, Debug)]
pub struct FleetCerts {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl CertAuthority {
    /// A new self-signed CA named `cn`, valid from a day ago for ten years.
    pub fn new(cn: &str) -> Result<CertAuthority, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(CertAuthority { cert, key })
    }

    /// The CA certificate, PEM-encoded.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `cn`, valid from a day ago for `days` days.
    pub fn issue(&self, cn: &str, days: i64) -> Result<IssuedCert, rcgen::Error> {
        let now = OffsetDateTime::now_utc();
        self.issue_valid(cn, now - Duration::days(1), now + Duration::days(days))
    }

    /// A certificate for `cn` valid between the two instants (tests use one in the past).
    pub fn issue_valid(
        &self,
        cn: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<IssuedCert, rcgen::Error> {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
        params.distinguished_name = name(cn);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl IssuedCert {
    /// Writes `<dir>/<name>.pem` and `<dir>/<name>-key.pem` (owner-only); returns both paths.
    pub fn write(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), SecurityError> {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        write_file(dir, &cert, &self.cert_pem, false)?;
        write_file(dir, &key, &self.key_pem, true)?;
        Ok((cert, key))
    }
}

/// Writes `ca.pem`, `server.pem`/`server-key.pem` (CN `server_cn`, for PD and stores) and
/// `client.pem`/`client-key.pem` (CN `client_cn`, for clients and tools) into `dir`,
/// creating it. The CA key is not kept: the set is thrown away with the fleet.
pub fn generate_fleet_certs(
    dir: &Path,
    server_cn: &str,
    client_cn: &str,
    days: i64,
) -> Result<FleetCerts, SecurityError> {
    let fail = |e: rcgen::Error| SecurityError::Generate {
        dir: dir.to_path_buf(),
        detail: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| SecurityError::Generate {
        dir: dir.to_path_buf(),
        detail: e.to_string(),
    })?;
    let ca = CertAuthority::new("Shoal test CA").map_err(fail)?;
    let ca_path = dir.join("ca.pem");
    write_file(dir, &ca_path, &ca.cert_pem(), false)?;
    let (server_cert, server_key) = ca
        .issue(server_cn, days)
        .map_err(fail)?
        .write(dir, "server")?;
    let (client_cert, client_key) = ca
        .issue(client_cn, days)
        .map_err(fail)?
        .write(dir, "client")?;
    Ok(FleetCerts {
        ca: ca_path,
        server_cert,
        server_key,
        client_cert,
        client_key,
    })
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn write_file(dir: &Path, path: &Path, text: &str, private: bool) -> Result<(), SecurityError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| SecurityError::Generate {
            dir: dir.to_path_buf(),
            detail: format!("{}: {e}", path.display()),
        })
}
