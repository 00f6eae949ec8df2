//! Command-line flags of `shoal-server`; each one overrides its config-file key.

use std::path::PathBuf;

use clap::Parser;

use super::{Config, LogFormat};

/// A Shoal store: one data directory serving many regions.
#[derive(Clone, Debug, Default, Parser)]
#[command(name = "shoal-server", version)]
pub struct Flags {
    /// TOML config file; flags override its keys. Repeat it to layer files: each one's keys
    /// override the same keys of the files before it, table by table (a base config plus a
    /// file of overrides).
    #[arg(long)]
    pub config: Vec<PathBuf>,
    /// PD endpoints, comma-separated (pd.endpoints).
    #[arg(long, value_delimiter = ',')]
    pub pd: Vec<String>,
    /// gRPC listen address (server.addr).
    #[arg(long)]
    pub addr: Option<String>,
    /// Address other stores and clients dial (server.advertise-addr).
    #[arg(long)]
    pub advertise_addr: Option<String>,
    /// Status HTTP address (server.status-addr).
    #[arg(long)]
    pub status_addr: Option<String>,
    /// Data directory (storage.data-dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log line format (log.format).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// CA certificate PEM file (security.ca-path).
    #[arg(long)]
    pub ca_path: Option<PathBuf>,
    /// This store's certificate PEM file (security.cert-path).
    #[arg(long)]
    pub cert_path: Option<PathBuf>,
    /// This store's private key PEM file (security.key-path).
    #[arg(long)]
    pub key_path: Option<PathBuf>,
}

impl Flags {
    /// Overrides the config's keys with the flags that were given.
    pub fn apply(&self, cfg: &mut Config) {
        if !self.pd.is_empty() {
            cfg.pd.endpoints = self.pd.clone();
        }
        if let Some(a) = &self.addr {
            cfg.server.addr = a.clone();
        }
        if let Some(a) = &self.advertise_addr {
            cfg.server.advertise_addr = a.clone();
        }
        if let Some(a) = &self.status_addr {
            cfg.server.status_addr = a.clone();
        }
        if let Some(d) = &self.data_dir {
            cfg.storage.data_dir = d.clone();
        }
        if let Some(f) = self.log_format {
            cfg.log.format = f;
        }
        if let Some(p) = &self.ca_path {
            cfg.security.ca_path = p.clone();
        }
        if let Some(p) = &self.cert_path {
            cfg.security.cert_path = p.clone();
        }
        if let Some(p) = &self.key_path {
            cfg.security.key_path = p.clone();
        }
    }
}
