//! `cert generate`: a throwaway CA with a server and a client certificate (rcgen), for a
//! TLS fleet on one machine (`make run TLS=1`) and tests.

use std::fmt::Write;
use std::path::Path;

use anyhow::{bail, Result};

/// The files `generate` writes into its directory.
pub const FILES: [&str; 5] = [
    "ca.pem",
    "server.pem",
    "server-key.pem",
    "client.pem",
    "client-key.pem",
];

/// Writes `ca.pem`, `server.pem`, `server-key.pem`, `client.pem` and `client-key.pem` into
/// `dir`; returns what was written and how to use it. Unless `force`, fails without writing
/// anything when one of them exists: certificates from a new CA would lock out a fleet
/// running on the old one.
pub fn generate(
    dir: &Path,
    client_cn: &str,
    server_cn: &str,
    days: u32,
    force: bool,
) -> Result<String> {
    let existing: Vec<String> = FILES
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !force && !existing.is_empty() {
        bail!(
            "{} already exists; pass --force to replace the certificates (a fleet using \
             them would then refuse connections until it is given the new ones)",
            existing.join(", ")
        );
    }
    let files = security::generate::generate_fleet_certs(dir, server_cn, client_cn, days.into())?;
    let mut out = String::new();
    writeln!(out, "CA certificate:      {}", files.ca.display())?;
    writeln!(
        out,
        "server certificate:  {} (key {}, CN {server_cn})",
        files.server_cert.display(),
        files.server_key.display()
    )?;
    writeln!(
        out,
        "client certificate:  {} (key {}, CN {client_cn})",
        files.client_cert.display(),
        files.client_key.display()
    )?;
    writeln!(out, "valid for 127.0.0.1 and localhost, {days} days")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_certificates_are_replaced_only_when_forced() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("shoal-ctl-cert-{}-{nanos}", std::process::id()));
        generate(&dir, "c", "s", 1, false).unwrap();
        let ca = std::fs::read(dir.join("ca.pem")).unwrap();
        let err = generate(&dir, "c", "s", 1, false).unwrap_err().to_string();
        assert!(err.contains("ca.pem") && err.contains("--force"), "{err}");
        assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca);
        generate(&dir, "c", "s", 1, true).unwrap();
        assert_ne!(std::fs::read(dir.join("ca.pem")).unwrap(), ca);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
