//! Reading the `[security]` files and checking them before anything listens: each problem
//! becomes a [`SecurityError`] naming its file.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

use crate::config::SecurityConfig;
use crate::error::SecurityError;

/// The checked contents of the `[security]` files: the CA certificates, this process's
/// certificate chain and key (as DER for rustls and as PEM for tonic), and the allowed CNs.
#[derive(Debug)]
pub struct TlsMaterial {
    /// Where the files came from, for messages.
    pub ca_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub(crate) ca_pem: Vec<u8>,
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    pub(crate) ca_certs: Vec<CertificateDer<'static>>,
    pub(crate) cert_chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// Common Names a client certificate must carry one of (empty: any).
    pub allowed_cn: Vec<String>,
}

impl TlsMaterial {
    /// The CA certificates as a rustls trust store; an unusable one is named by its file.
    pub(crate) fn root_store(&self) -> Result<rustls::RootCertStore, SecurityError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in &self.ca_certs {
            roots
                .add(ca.clone())
                .map_err(|e| SecurityError::BadCertificate {
                    what: "CA certificate",
                    path: self.ca_path.clone(),
                    detail: e.to_string(),
                })?;
        }
        Ok(roots)
    }
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        TlsMaterial {
            ca_path: self.ca_path.clone(),
            cert_path: self.cert_path.clone(),
            key_path: self.key_path.clone(),
            ca_pem: self.ca_pem.clone(),
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            ca_certs: self.ca_certs.clone(),
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            allowed_cn: self.allowed_cn.clone(),
        }
    }
}

impl TlsMaterial {
    /// `None` when TLS is off; otherwise the files, read and checked: every certificate is
    /// PEM, parses, and is within its validity period; the key is PEM and matches the
    /// certificate; the certificate is signed by (one of) the CA certificate(s).
    pub fn load(cfg: &SecurityConfig) -> Result<Option<TlsMaterial>, SecurityError> {
        cfg.validate()?;
        if !cfg.enabled()? {
            return Ok(None);
        }
        let ca_pem = read("CA certificate", &cfg.ca_path)?;
        let cert_pem = read("certificate", &cfg.cert_path)?;
        let key_pem = read("private key", &cfg.key_path)?;

        let ca_certs = pem_certs("CA certificate", &cfg.ca_path, &ca_pem)?;
        let cert_chain = pem_certs("certificate", &cfg.cert_path, &cert_pem)?;
        let key = pem_key(&cfg.key_path, &key_pem)?;

        let now = ASN1Time::now();
        let mut cas = Vec::with_capacity(ca_certs.len());
        for der in &ca_certs {
            cas.push(parse_valid("CA certificate", &cfg.ca_path, der, now)?);
        }
        let leaf = parse_valid("certificate", &cfg.cert_path, &cert_chain[0], now)?;
        // The leaf must be signed by a CA certificate, or by an intermediate in its own file
        // that is: check the chain's last certificate against the CA.
        let top = match cert_chain.last() {
            Some(der) if cert_chain.len() > 1 => {
                parse_valid("certificate", &cfg.cert_path, der, now)?
            }
            _ => leaf,
        };
        let signed = cas
            .iter()
            .any(|ca| top.verify_signature(Some(ca.public_key())).is_ok());
        if !signed {
            return Err(SecurityError::NotSignedByCa {
                cert_path: cfg.cert_path.clone(),
                ca_path: cfg.ca_path.clone(),
            });
        }

        match CertifiedKey::from_der(
            cert_chain.clone(),
            key.clone_key(),
            &crate::crypto_provider(),
        ) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(SecurityError::KeyMismatch {
                    key_path: cfg.key_path.clone(),
                    cert_path: cfg.cert_path.clone(),
                })
            }
            Err(e) => {
                return Err(SecurityError::BadKey {
                    path: cfg.key_path.clone(),
                    detail: e.to_string(),
                })
            }
        }

        Ok(Some(TlsMaterial {
            ca_path: cfg.ca_path.clone(),
            cert_path: cfg.cert_path.clone(),
            key_path: cfg.key_path.clone(),
            ca_pem,
            cert_pem,
            key_pem,
            ca_certs,
            cert_chain,
            key,
            allowed_cn: cfg.cert_allowed_cn.clone(),
        }))
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_certs(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let not_pem = |detail: String| SecurityError::NotPem {
        what,
        path: path.to_path_buf(),
        detail,
    };
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(not_pem("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn pem_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, SecurityError> {
    let not_pem = |detail: String| SecurityError::NotPem {
        what: "private key",
        path: path.to_path_buf(),
        detail,
    };
    match rustls_pemfile::private_key(&mut &pem[..]) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(not_pem(
            "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found".into(),
        )),
        Err(e) => Err(not_pem(e.to_string())),
    }
}

/// Parses one certificate and checks it is valid now.
fn parse_valid<'a>(
    what: &'static str,
    path: &Path,
    der: &'a CertificateDer<'static>,
    now: ASN1Time,
) -> Result<X509Certificate<'a>, SecurityError> {
    let (_, cert) =
        X509Certificate::from_der(der.as_ref()).map_err(|e| SecurityError::BadCertificate {
            what,
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let validity = cert.validity();
    if now > validity.not_after {
        return Err(SecurityError::Expired {
            what,
            path: path.to_path_buf(),
            not_after: validity.not_after.to_string(),
        });
    }
    if now < validity.not_before {
        return Err(SecurityError::NotYetValid {
            what,
            path: path.to_path_buf(),
            not_before: validity.not_before.to_string(),
        });
    }
    Ok(cert)
}

/// The Common Names in a certificate's subject (usually one).
pub(crate) fn common_names(der: &[u8]) -> Vec<String> {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate_fleet_certs, CertAuthority};
    use time::{Duration, OffsetDateTime};

    fn fleet() -> (tempfile::TempDir, crate::generate::FleetCerts) {
        let dir = tempfile::tempdir().unwrap();
        let certs = generate_fleet_certs(dir.path(), "shoal-server", "shoal-client", 30).unwrap();
        (dir, certs)
    }

    fn cfg(ca: &Path, cert: &Path, key: &Path) -> SecurityConfig {
        SecurityConfig::new(ca, cert, key)
    }

    fn error_of(c: &SecurityConfig) -> SecurityError {
        TlsMaterial::load(c).expect_err("the files must be refused")
    }

    #[test]
    fn security_generated_certificates_load() {
        let (_dir, certs) = fleet();
        let m = TlsMaterial::load(&cfg(&certs.ca, &certs.server_cert, &certs.server_key))
            .unwrap()
            .unwrap();
        assert_eq!(common_names(m.cert_chain[0].as_ref()), vec!["shoal-server"]);
        crate::server::server_config(&m).unwrap();
        crate::client::rustls_client_config(&m).unwrap();
        assert!(TlsMaterial::load(&SecurityConfig::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn security_missing_file_is_named() {
        let (dir, certs) = fleet();
        let missing = dir.path().join("nope.pem");
        let e = error_of(&cfg(&certs.ca, &missing, &certs.server_key));
        assert!(matches!(e, SecurityError::Read { .. }), "{e}");
        assert!(e.to_string().contains("nope.pem"), "{e}");
    }

    #[test]
    fn security_not_pem_is_named() {
        let (dir, certs) = fleet();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "this is not a certificate\n").unwrap();
        for c in [
            cfg(&junk, &certs.server_cert, &certs.server_key),
            cfg(&certs.ca, &junk, &certs.server_key),
            cfg(&certs.ca, &certs.server_cert, &junk),
        ] {
            let e = error_of(&c);
            assert!(matches!(e, SecurityError::NotPem { .. }), "{e}");
            assert!(e.to_string().contains("junk.pem"), "{e}");
        }
        // A key file given as the certificate holds no CERTIFICATE block.
        let e = error_of(&cfg(&certs.ca, &certs.server_key, &certs.server_key));
        assert!(e.to_string().contains("server-key.pem"), "{e}");
    }

    #[test]
    fn security_expired_certificate_is_named() {
        let (dir, certs) = fleet();
        let ca = CertAuthority::new("expired test CA").unwrap();
        std::fs::write(dir.path().join("ca2.pem"), ca.cert_pem()).unwrap();
        let now = OffsetDateTime::now_utc();
        let old = ca
            .issue_valid("old", now - Duration::days(10), now - Duration::days(1))
            .unwrap();
        let (cert, key) = old.write(dir.path(), "expired").unwrap();
        let e = error_of(&cfg(&dir.path().join("ca2.pem"), &cert, &key));
        assert!(matches!(e, SecurityError::Expired { .. }), "{e}");
        assert!(e.to_string().contains("expired.pem"), "{e}");
        drop(certs);
    }

    #[test]
    fn security_key_not_matching_cert_is_named() {
        let (_dir, certs) = fleet();
        let e = error_of(&cfg(&certs.ca, &certs.server_cert, &certs.client_key));
        assert!(matches!(e, SecurityError::KeyMismatch { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("client-key.pem") && text.contains("server.pem"),
            "{text}"
        );
    }

    #[test]
    fn security_cert_of_another_ca_is_named() {
        let (dir, certs) = fleet();
        let other = CertAuthority::new("another CA").unwrap();
        let (cert, key) = other
            .issue("stranger", 30)
            .unwrap()
            .write(dir.path(), "stranger")
            .unwrap();
        let e = error_of(&cfg(&certs.ca, &cert, &key));
        assert!(matches!(e, SecurityError::NotSignedByCa { .. }), "{e}");
        assert!(e.to_string().contains("stranger.pem"), "{e}");
    }
}
