//! TLS and mutual TLS for every Shoal endpoint, in one place shared by the store, PD, the PD
//! client and `shoal-ctl`:
//!
//! - [`SecurityConfig`]: the `[security]` config section (`ca-path`, `cert-path`, `key-path`,
//!   `cert-allowed-cn`), as TiKV and PD have it. All three paths set turns TLS on, none leaves
//!   plaintext, anything in between is refused.
//! - [`TlsMaterial::load`]: reads and checks the PEM files at start, so an expired, unreadable,
//!   malformed, mismatched or foreign certificate is a [`SecurityError`] naming the file, not a
//!   failed handshake later.
//! - [`server`]: a rustls server config that requires a client certificate signed by the CA
//!   (and, when `cert-allowed-cn` is set, one of those Common Names), and a stream of accepted
//!   TLS connections that tonic (gRPC and the HTTP APIs it carries) serves from.
//! - [`client`]: tonic's client TLS settings and a rustls client config for HTTP clients.
//! - [`generate`]: a throwaway CA and its certificates (rcgen), for `make run TLS=1` and tests.

mod config;
mod error;
mod load;

pub mod client;
pub mod generate;
pub mod server;

pub use config::SecurityConfig;
pub use error::SecurityError;
pub use load::TlsMaterial;

use std::sync::Arc;

/// The crypto provider every TLS config here is built with: ring, the one rustls backend in
/// the build (tonic's `tls` feature and ureq use it too).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide rustls provider, for configs built by libraries (tonic's
/// client) with `ClientConfig::builder()`. Harmless when called again or when one is already
/// installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The rustls this crate builds its configs with (the one tonic's `tls` feature uses).
pub use rustls;
