//! Tells whether an address answers in TLS, so a command that failed without certificates
//! can say that the fleet wants them instead of leaving the user with a transport error.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long the probe waits to connect and for the first byte of the answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// TLS record content types a TLS server answers a plaintext request with: an alert (21,
/// usually `decode_error`) or a handshake record (22).
const TLS_ALERT: u8 = 21;
const TLS_HANDSHAKE: u8 = 22;

/// Whether `address` (`host:port`, or a URL with `http://` / `https://`) answers a plaintext
/// HTTP request with a TLS record. False when it cannot be reached or answers otherwise.
pub fn speaks_tls(address: &str) -> bool {
    let host_port = address
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let Some(addr) = host_port.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(PROBE_TIMEOUT));
    if stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    matches!(stream.read(&mut first), Ok(1) if first[0] == TLS_ALERT || first[0] == TLS_HANDSHAKE)
}

/// The hint added to a failed command's error when it ran without certificates and one of
/// PD's addresses speaks TLS.
pub fn missing_certificates_hint(pd: &str, pd_http: &str) -> Option<String> {
    let tls_address = [pd, pd_http].into_iter().find(|a| speaks_tls(a))?;
    Some(format!(
        "hint: PD at {tls_address} serves TLS: pass --ca-path, --cert-path and --key-path \
         (a fleet from `make run TLS=1` keeps them under its data directory's certs/)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server on loopback that answers the first request with `answer`.
    fn answering(answer: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer);
            }
        });
        addr
    }

    #[test]
    fn a_tls_alert_is_told_from_plain_http_and_from_nothing() {
        // What a TLS server sends back to a plaintext request: a fatal decode_error alert.
        assert!(speaks_tls(&answering(&[21, 3, 3, 0, 2, 2, 50])));
        assert!(speaks_tls(&format!(
            "http://{}",
            answering(&[22, 3, 3, 0, 2, 2, 50])
        )));
        assert!(!speaks_tls(&answering(b"HTTP/1.1 404 Not Found\r\n\r\n")));
        // A port nobody listens on (bound, then released).
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!speaks_tls(&free.to_string()));
        assert!(!speaks_tls("not an address"));
    }
}
