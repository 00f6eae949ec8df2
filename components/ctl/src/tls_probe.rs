//! Tells whether an address answers in TLS, so a command that failed can say why instead of
//! leaving the user with a transport error: without certificates, that the fleet wants them;
//! with them, that PD serves plaintext, or what the TLS handshake with PD refused.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long the probe waits to connect and for the first byte of the answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// TLS record content types a TLS server answers a plaintext request with: an alert (21,
/// usually `decode_error`) or a handshake record (22).
const TLS_ALERT: u8 = 21;
const TLS_HANDSHAKE: u8 = 22;

/// `host:port` of `address` (`host:port`, or a URL with `http://` / `https://`).
fn host_port(address: &str) -> &str {
    address
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
}

/// A TCP connection to `address` with the probe's timeouts; None when it cannot be made.
fn connect(address: &str) -> Option<TcpStream> {
    let addr = host_port(address).to_socket_addrs().ok()?.next()?;
    let stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    Some(stream)
}

/// The first `N` bytes `address` answers a plaintext HTTP request with; None when it cannot
/// be reached or says less.
fn plaintext_answer<const N: usize>(address: &str) -> Option<[u8; N]> {
    let mut stream = connect(address)?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut first = [0u8; N];
    stream.read_exact(&mut first).ok()?;
    Some(first)
}

/// Whether `address` answers a plaintext HTTP request with a TLS record. False when it
/// cannot be reached or answers otherwise.
pub fn speaks_tls(address: &str) -> bool {
    matches!(plaintext_answer::<1>(address), Some([b]) if b == TLS_ALERT || b == TLS_HANDSHAKE)
}

/// Whether `address` answers a plaintext HTTP request in plaintext HTTP (PD serves HTTP/1.1
/// on both of its ports).
pub fn speaks_plaintext(address: &str) -> bool {
    plaintext_answer::<5>(address).is_some_and(|first| &first == b"HTTP/")
}

/// What goes wrong in a TLS session with `address` using `material` (the CA, and the client
/// certificate PD checks): the handshake's error, or the alert PD sends when it refuses the
/// client certificate (TLS 1.3 sends it after the client has finished its handshake). None
/// when a request is answered, or when the address cannot be reached at all.
pub fn tls_session_error(address: &str, material: &security::TlsMaterial) -> Option<String> {
    let config = security::client::rustls_client_config(material).ok()?;
    let host = host_port(address)
        .rsplit_once(':')
        .map_or(address, |(h, _)| h);
    let name = security::rustls::pki_types::ServerName::try_from(host.to_string()).ok()?;
    let mut session = security::rustls::ClientConnection::new(config, name).ok()?;
    let mut socket = connect(address)?;
    let mut stream = security::rustls::Stream::new(&mut session, &mut socket);
    if let Err(e) = stream.write_all(b"GET / HTTP/1.0\r\n\r\n") {
        return Some(e.to_string());
    }
    let mut first = [0u8; 1];
    match stream.read(&mut first) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => None,
        Err(e) => Some(e.to_string()),
    }
}

/// The hint added to a failed command's error when it ran with certificates: PD serves
/// plaintext, or its TLS session refuses them.
pub fn certificates_hint(
    pd: &str,
    pd_http: &str,
    material: &security::TlsMaterial,
) -> Option<String> {
    if let Some(plain) = [pd, pd_http].into_iter().find(|a| speaks_plaintext(a)) {
        return Some(format!(
            "hint: PD at {plain} serves plaintext: run without --ca-path, --cert-path and \
             --key-path"
        ));
    }
    let (address, error) = [pd, pd_http]
        .into_iter()
        .find_map(|a| tls_session_error(a, material).map(|e| (a, e)))?;
    Some(format!(
        "hint: TLS with PD at {address} fails: {error} (are --ca-path and --cert-path from \
         the fleet's certificate authority?)"
    ))
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
        assert!(speaks_plaintext(&answering(
            b"HTTP/1.1 404 Not Found\r\n\r\n"
        )));
        assert!(!speaks_plaintext(&answering(&[21, 3, 3, 0, 2, 2, 50])));
        // A port nobody listens on (bound, then released).
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!speaks_tls(&free.to_string()));
        assert!(!speaks_tls("not an address"));
    }
}
