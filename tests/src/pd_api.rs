//! Blocking JSON calls to PD's HTTP API (`/pd/api/v1`).

use std::sync::Arc;
use std::time::Duration;

use security::rustls;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// PD's HTTP API at one address.
#[derive(Clone)]
pub struct PdApi {
    base: String,
    agent: ureq::Agent,
}

/// An answer with its status, for tests that expect refusals.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Value,
}

impl PdApi {
    pub fn new(http_addr: &str) -> PdApi {
        PdApi {
            base: format!("http://{http_addr}/pd/api/v1"),
            agent: agent(None),
        }
    }

    /// PD's API over `https`, presenting the client certificate of `tls`.
    pub fn with_tls(http_addr: &str, tls: Arc<rustls::ClientConfig>) -> PdApi {
        PdApi {
            base: format!("https://{http_addr}/pd/api/v1"),
            agent: agent(Some(tls)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Sends a request and returns status and JSON body (`null` when the body is empty,
    /// a string when it is not JSON), whatever the status.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<HttpAnswer> {
        let url = self.url(path);
        let request = self.agent.request(method, &url);
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(e)) => bail!("{method} {url}: {e}"),
        };
        let status = response.status();
        let text = response
            .into_string()
            .with_context(|| format!("{method} {url}: unreadable body"))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(HttpAnswer { status, body })
    }

    fn expect_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let answer = self.request(method, path, body)?;
        if !(200..300).contains(&answer.status) {
            return Err(anyhow!(
                "{method} {path} answered {}: {}",
                answer.status,
                answer.body
            ));
        }
        Ok(answer.body)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.expect_ok("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.expect_ok("POST", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value> {
        self.expect_ok("DELETE", path, None)
    }

    /// The `regions` array of `GET /regions`.
    pub fn regions(&self) -> Result<Vec<Value>> {
        list_field(self.get("regions")?, "regions")
    }

    /// The `stores` array of `GET /stores`.
    pub fn stores(&self) -> Result<Vec<Value>> {
        list_field(self.get("stores")?, "stores")
    }
}

fn list_field(mut page: Value, field: &str) -> Result<Vec<Value>> {
    match page.get_mut(field).map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) | None if page.get("count").and_then(Value::as_u64) == Some(0) => {
            Ok(Vec::new())
        }
        _ => bail!("PD answer has no {field:?} array: {page}"),
    }
}

/// Accessors for the JSON of one store in `/stores`.
pub mod store_json {
    use serde_json::Value;

    pub fn id(store: &Value) -> u64 {
        store["store"]["id"].as_u64().unwrap_or(0)
    }
    pub fn state(store: &Value) -> &str {
        store["store"]["state_name"].as_str().unwrap_or("")
    }
    pub fn region_count(store: &Value) -> u64 {
        store["status"]["region_count"].as_u64().unwrap_or(0)
    }
    pub fn leader_count(store: &Value) -> u64 {
        store["status"]["leader_count"].as_u64().unwrap_or(0)
    }
    pub fn address(store: &Value) -> &str {
        store["store"]["address"].as_str().unwrap_or("")
    }
}

/// Accessors for the JSON of one region in `/regions`.
pub mod region_json {
    use serde_json::Value;

    pub fn id(region: &Value) -> u64 {
        region["id"].as_u64().unwrap_or(0)
    }
    /// Start key as raw encoded bytes (PD sends hex).
    pub fn start_key(region: &Value) -> Vec<u8> {
        hex_field(region, "start_key")
    }
    pub fn end_key(region: &Value) -> Vec<u8> {
        hex_field(region, "end_key")
    }
    fn hex_field(region: &Value, field: &str) -> Vec<u8> {
        region[field]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .unwrap_or_default()
    }
    /// Store ids of the region's peers.
    pub fn peer_stores(region: &Value) -> Vec<u64> {
        region["peers"]
            .as_array()
            .map(|peers| {
                peers
                    .iter()
                    .filter_map(|p| p["store_id"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Store ids of the region's voters: peers whose `role_name` is `Voter` (a peer without
    /// one counts as a voter, as PD reads an unknown role). Learners and peers in a joint
    /// configuration's transition (`IncomingVoter`, `DemotingVoter`) are left out: none of
    /// them is a settled member that can take the lead.
    pub fn voter_stores(region: &Value) -> Vec<u64> {
        region["peers"]
            .as_array()
            .map(|peers| {
                peers
                    .iter()
                    .filter(|p| p["role_name"].as_str().is_none_or(|r| r == "Voter"))
                    .filter_map(|p| p["store_id"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Store id of the leader, if PD knows one.
    pub fn leader_store(region: &Value) -> Option<u64> {
        region["leader"]["store_id"].as_u64().filter(|s| *s != 0)
    }
}

/// A blocking HTTP agent with short timeouts; over TLS with `tls`.
pub fn agent(tls: Option<Arc<rustls::ClientConfig>>) -> ureq::Agent {
    let builder = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout(Duration::from_secs(10));
    match tls {
        Some(tls) => builder.tls_config(tls).build(),
        None => builder.build(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn region_accessors_read_the_documented_shape() {
        let region = json!({"id": 4, "start_key": "72ff", "end_key": "",
            "peers": [{"id": 5, "store_id": 1}, {"id": 6, "store_id": 2}],
            "leader": {"id": 6, "store_id": 2}});
        assert_eq!(region_json::id(&region), 4);
        assert_eq!(region_json::start_key(&region), vec![0x72, 0xff]);
        assert!(region_json::end_key(&region).is_empty());
        assert_eq!(region_json::peer_stores(&region), vec![1, 2]);
        assert_eq!(region_json::leader_store(&region), Some(2));
        assert_eq!(region_json::leader_store(&json!({"leader": null})), None);
    }

    #[test]
    fn voters_leave_out_learners_and_peers_in_transition() {
        let region = json!({"peers": [
            {"id": 5, "store_id": 1, "role_name": "Voter"},
            {"id": 6, "store_id": 2, "role_name": "Learner"},
            {"id": 7, "store_id": 3},
            {"id": 8, "store_id": 4, "role_name": "IncomingVoter"},
            {"id": 9, "store_id": 5, "role_name": "DemotingVoter"}]});
        assert_eq!(region_json::voter_stores(&region), vec![1, 3]);
        assert_eq!(region_json::peer_stores(&region), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn list_field_requires_the_array() {
        assert_eq!(
            list_field(json!({"count": 1, "regions": [1]}), "regions")
                .unwrap()
                .len(),
            1
        );
        assert!(list_field(json!({"count": 0}), "regions")
            .unwrap()
            .is_empty());
        assert!(list_field(json!({"count": 2}), "regions").is_err());
    }
}
