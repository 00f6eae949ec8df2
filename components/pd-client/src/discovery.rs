//! Finding PD's leader: ask each endpoint for the members, then connect to the leader's
//! first client URL and check it serves the same cluster.

use std::time::Duration;

use proto::pdpb::pd_client::PdClient as PdGrpc;
use proto::pdpb::{GetMembersRequest, GetMembersResponse};
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info};

use crate::config::Config;
use crate::errors::{Error, Result};
use crate::header;

/// The generated PD stub over one HTTP/2 channel.
pub(crate) type PdStub = PdGrpc<Channel>;

/// Largest PD message accepted or sent (region scans can be large).
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// The PD member this client talks to.
#[derive(Clone)]
pub(crate) struct Leader {
    pub url: String,
    pub stub: PdStub,
    /// Client URLs of every member, tried first on the next discovery.
    pub member_urls: Vec<String>,
}

/// `host:port`, `http://host:port` or `https://host:port` as the URL gRPC dials: `https://`
/// when `tls` is on, `http://` otherwise, whatever the endpoint was written with.
pub(crate) fn normalize(endpoint: &str, tls: bool) -> Result<String> {
    let trimmed = endpoint.trim();
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed)
        .trim_end_matches('/');
    let port_ok = rest
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if rest.contains("://") || rest.contains('/') || !port_ok {
        return Err(Error::InvalidEndpoint(endpoint.to_string()));
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{rest}"))
}

/// Opens a channel to `url` and wraps it in the PD stub.
pub(crate) async fn connect_stub(url: &str, cfg: &Config) -> Result<PdStub> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|_| Error::InvalidEndpoint(url.to_string()))?
        .connect_timeout(cfg.connect_timeout)
        .tcp_nodelay(true)
        .tcp_keepalive(Some(Duration::from_secs(10)))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true);
    let endpoint = match &cfg.tls {
        Some(tls) => endpoint
            .tls_config(tls.clone())
            .map_err(|e| Error::Transport(format!("{url}: TLS settings: {e}")))?,
        None => endpoint,
    };
    // The TCP connect is bounded by `connect_timeout`; the HTTP/2 handshake after it too.
    let channel = match tokio::time::timeout(cfg.connect_timeout, endpoint.connect()).await {
        Ok(Ok(ch)) => ch,
        Ok(Err(e)) => return Err(Error::Transport(format!("{url}: {e}"))),
        Err(_) => {
            return Err(Error::Transport(format!(
                "{url}: connect timed out after {:?}",
                cfg.connect_timeout
            )))
        }
    };
    Ok(PdGrpc::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE))
}

/// `GetMembers` with the checks the protocol requires: a header, no header error.
async fn get_members(stub: &mut PdStub, cfg: &Config) -> Result<GetMembersResponse> {
    let req = GetMembersRequest { header: None };
    let resp = match tokio::time::timeout(cfg.request_timeout, stub.get_members(req)).await {
        Ok(r) => r?.into_inner(),
        Err(_) => {
            return Err(Error::Timeout {
                method: "GetMembers",
                after: cfg.request_timeout,
            })
        }
    };
    if resp.header.is_none() {
        return Err(Error::MissingField {
            method: "GetMembers",
            field: "header",
        });
    }
    header::check(resp)
}

/// Asks one endpoint for the leader and connects to it.
async fn discover_via(
    url: &str,
    cfg: &Config,
    expected_cluster: Option<u64>,
) -> Result<(u64, Leader)> {
    let mut stub = connect_stub(url, cfg).await?;
    let resp = get_members(&mut stub, cfg).await?;
    let cluster_id = resp.header.as_ref().map_or(0, |h| h.cluster_id);
    if let Some(expected) = expected_cluster.filter(|e| *e != cluster_id) {
        return Err(Error::ClusterMismatch {
            endpoint: url.to_string(),
            expected,
            got: cluster_id,
        });
    }
    let leader_url = resp
        .leader
        .as_ref()
        .and_then(|l| l.client_urls.first())
        .ok_or_else(|| Error::NoLeader(format!("{url} knows no leader")))?;
    let leader_url = normalize(leader_url, cfg.tls.is_some())?;
    let member_urls = resp
        .members
        .iter()
        .flat_map(|m| m.client_urls.first())
        .filter_map(|u| normalize(u, cfg.tls.is_some()).ok())
        .collect();
    let stub = if leader_url == url {
        stub
    } else {
        let mut leader_stub = connect_stub(&leader_url, cfg).await?;
        let confirm = get_members(&mut leader_stub, cfg).await?;
        let got = confirm.header.as_ref().map_or(0, |h| h.cluster_id);
        if got != cluster_id {
            return Err(Error::ClusterMismatch {
                endpoint: leader_url,
                expected: cluster_id,
                got,
            });
        }
        leader_stub
    };
    Ok((
        cluster_id,
        Leader {
            url: leader_url,
            stub,
            member_urls,
        },
    ))
}

/// Tries every endpoint in turn until one leads to a leader of the expected cluster.
pub(crate) async fn discover(
    endpoints: &[String],
    cfg: &Config,
    expected_cluster: Option<u64>,
) -> Result<(u64, Leader)> {
    if endpoints.is_empty() {
        return Err(Error::NoEndpoints);
    }
    let mut failures = Vec::new();
    let mut mismatch = None;
    for url in endpoints {
        match discover_via(url, cfg, expected_cluster).await {
            Ok((cluster_id, leader)) => {
                info!(cluster_id, leader = %leader.url, "connected to pd leader");
                return Ok((cluster_id, leader));
            }
            Err(e @ Error::ClusterMismatch { .. }) => {
                debug!(endpoint = %url, error = %e, "pd endpoint serves another cluster");
                failures.push(e.to_string());
                mismatch = Some(e);
            }
            Err(e) => {
                debug!(endpoint = %url, error = %e, "pd endpoint failed");
                failures.push(format!("{url}: {e}"));
            }
        }
    }
    // A PD of another cluster is a configuration mistake, not an outage: say so.
    Err(mismatch.unwrap_or_else(|| Error::NoLeader(failures.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized_to_http_urls() {
        assert_eq!(
            normalize("127.0.0.1:2379", false).unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            normalize("http://127.0.0.1:2379/", false).unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(normalize(" pd-1:2379 ", false).unwrap(), "http://pd-1:2379");
    }

    #[test]
    fn endpoints_take_the_scheme_tls_calls_for() {
        assert_eq!(
            normalize("https://127.0.0.1:2379/", true).unwrap(),
            "https://127.0.0.1:2379"
        );
        assert_eq!(normalize("pd-1:2379", true).unwrap(), "https://pd-1:2379");
        assert_eq!(normalize("https://pd-1:1", false).unwrap(), "http://pd-1:1");
    }

    #[test]
    fn malformed_endpoints_are_refused() {
        for bad in [
            "",
            "http://",
            "127.0.0.1",
            "https://",
            "x:1/path",
            "ftp://x:1",
        ] {
            assert!(
                matches!(normalize(bad, false), Err(Error::InvalidEndpoint(_))),
                "{bad:?} was accepted"
            );
        }
    }
}
