//! How to reach PD and how hard to try.

use std::time::Duration;

/// Settings of a PD client.
#[derive(Clone, Debug)]
pub struct Config {
    /// PD addresses, as `host:port`, `http://host:port` or `https://host:port` (the
    /// scheme dialed is `https` exactly when `tls` is set).
    pub endpoints: Vec<String>,
    /// Time allowed to open a connection to one PD address.
    pub connect_timeout: Duration,
    /// Time allowed for one request, once connected.
    pub request_timeout: Duration,
    /// Attempts of one request (reconnecting in between) before its error is returned.
    pub retry_limit: usize,
    /// TLS for every PD connection (the CA and this process's client certificate); `None`
    /// dials plaintext.
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoints: vec!["127.0.0.1:2379".to_string()],
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            retry_limit: 10,
            tls: None,
        }
    }
}

impl Config {
    /// The default settings for the given endpoints.
    pub fn new(endpoints: Vec<String>) -> Config {
        Config {
            endpoints,
            ..Config::default()
        }
    }
}
