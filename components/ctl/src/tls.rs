//! `shoal-ctl`'s TLS: the `--ca-path`, `--cert-path` and `--key-path` files, checked once,
//! for PD's HTTP API (a rustls client config for ureq) and the official client
//! (`Config::with_security`). One set per process, so commands reach it without threading it
//! through every signature.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use security::{SecurityConfig, TlsMaterial};

use crate::cli::Cli;

static MATERIAL: OnceLock<Option<TlsMaterial>> = OnceLock::new();

/// Loads and checks the files named on the command line (all three or none).
pub fn init(cli: &Cli) -> Result<()> {
    let cfg = SecurityConfig {
        ca_path: cli.ca_path.clone().unwrap_or_default(),
        cert_path: cli.cert_path.clone().unwrap_or_default(),
        key_path: cli.key_path.clone().unwrap_or_default(),
        cert_allowed_cn: Vec::new(),
    };
    let material = TlsMaterial::load(&cfg).context("--ca-path, --cert-path, --key-path")?;
    let _ = MATERIAL.set(material);
    Ok(())
}

/// The checked files, when TLS is on.
pub fn material() -> Option<&'static TlsMaterial> {
    MATERIAL.get().and_then(Option::as_ref)
}

/// The official client's config: TLS with the CA and client certificate when on.
pub fn tikv_config() -> tikv_client::Config {
    let config = tikv_client::Config::default();
    match material() {
        Some(m) => config.with_security(&m.ca_path, &m.cert_path, &m.key_path),
        None => config,
    }
}
