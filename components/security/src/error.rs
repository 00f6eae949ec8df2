//! Why TLS could not be set up; every file problem names the file.

use std::path::PathBuf;

/// A `[security]` setting or certificate file that cannot be used. Messages name the setting
/// without its section: the configs that hold one put `[security]` in front.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// Some but not all of the three paths are set.
    #[error(
        "needs ca-path, cert-path and key-path all set (TLS) or all empty \
         (plaintext); missing: {missing}"
    )]
    Incomplete { missing: String },
    /// `cert-allowed-cn` lists an empty name.
    #[error("cert-allowed-cn lists an empty name")]
    EmptyAllowedCn,
    /// The file cannot be read.
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file holds no PEM block of the expected kind.
    #[error("{what} file {path} is not PEM: {detail}")]
    NotPem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// A PEM block is not a valid X.509 certificate.
    #[error("{what} file {path} holds an invalid certificate: {detail}")]
    BadCertificate {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// The certificate's validity period has ended.
    #[error("{what} file {path}: the certificate expired at {not_after}")]
    Expired {
        what: &'static str,
        path: PathBuf,
        not_after: String,
    },
    /// The certificate's validity period has not begun.
    #[error("{what} file {path}: the certificate is not valid before {not_before}")]
    NotYetValid {
        what: &'static str,
        path: PathBuf,
        not_before: String,
    },
    /// The private key is unusable (unsupported kind, malformed).
    #[error("private key file {path} cannot be used: {detail}")]
    BadKey { path: PathBuf, detail: String },
    /// The private key does not belong to the certificate.
    #[error("private key file {key_path} does not match the certificate in {cert_path}")]
    KeyMismatch {
        key_path: PathBuf,
        cert_path: PathBuf,
    },
    /// The certificate was not issued by the configured CA.
    #[error("certificate file {cert_path} is not signed by the CA in {ca_path}")]
    NotSignedByCa {
        cert_path: PathBuf,
        ca_path: PathBuf,
    },
    /// rustls refused the assembled config (should not happen after the checks above).
    #[error("cannot build the TLS config from {cert_path}: {detail}")]
    Config { cert_path: PathBuf, detail: String },
    /// A certificate could not be generated or written.
    #[error("cannot generate certificates in {dir}: {detail}")]
    Generate { dir: PathBuf, detail: String },
}
