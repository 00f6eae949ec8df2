//! Free loopback ports, chosen before the processes start so restarts can reuse them.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// Ports already handed out by this process, so two fleets never get the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port on 127.0.0.1 that was free a moment ago and was not handed out before.
pub fn free_port() -> Result<u16> {
    for _ in 0..64 {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind an ephemeral port")?;
        let port = listener.local_addr()?.port();
        drop(listener);
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    bail!("no fresh ephemeral port after 64 tries")
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> Result<String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_not_handed_out_twice() {
        let a = super::free_port().unwrap();
        let b = super::free_port().unwrap();
        assert_ne!(a, b);
        assert!(super::free_addr().unwrap().starts_with("127.0.0.1:"));
    }
}
