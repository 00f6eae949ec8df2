//! `cert generate`: a throwaway CA with a server and a client certificate (rcgen), for a
//! TLS fleet on one machine (`make run TLS=1`) and tests.

use std::fmt::Write;
use std::path::Path;

use anyhow::Result;

/// Writes `ca.pem`, `server.pem`, `server-key.pem`, `client.pem` and `client-key.pem` into
/// `dir`; returns what was written and how to use it.
pub fn generate(dir: &Path, client_cn: &str, server_cn: &str, days: u32) -> Result<String> {
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
