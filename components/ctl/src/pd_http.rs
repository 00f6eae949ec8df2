//! A small blocking client for PD's HTTP API (`/pd/api/v1`).

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;

/// Talks to one PD's HTTP endpoint.
pub struct PdHttp {
    base: String,
    agent: ureq::Agent,
}

impl PdHttp {
    /// `addr` is `host:port`, with or without `http://` or `https://` in front; with `tls`
    /// the API is reached over `https` with the CA and the client certificate.
    pub fn new(addr: &str, tls: Option<&security::TlsMaterial>) -> Result<PdHttp> {
        let host = security::client::host_port(addr);
        let scheme = security::client::scheme(tls.is_some());
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(3))
            .timeout(Duration::from_secs(10));
        if let Some(m) = tls {
            agent = agent.tls_config(security::client::rustls_client_config(m)?);
        }
        Ok(PdHttp {
            base: format!("{scheme}://{host}/pd/api/v1"),
            agent: agent.build(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// GET `path` and parse the JSON answer.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self.url(path);
        let response = answer(self.agent.get(&url).call())?;
        response
            .into_json()
            .with_context(|| format!("GET {url}: the answer is not the expected JSON"))
    }

    /// POST `body` as JSON to `path`; returns the answer's text.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<String> {
        let url = self.url(path);
        let response = answer(self.agent.post(&url).send_json(body))?;
        response
            .into_string()
            .with_context(|| format!("POST {url}: unreadable answer"))
    }

    /// DELETE `path`; returns the answer's text.
    pub fn delete(&self, path: &str) -> Result<String> {
        let url = self.url(path);
        let response = answer(self.agent.delete(&url).call())?;
        response
            .into_string()
            .with_context(|| format!("DELETE {url}: unreadable answer"))
    }
}

/// Turns an HTTP error status into an error carrying PD's `{"error": ...}` message.
/// PD answered with an error status: `code` and the message of its JSON body (or, when the
/// body is empty, as for a request URI too long for PD's HTTP server, the status text).
#[derive(Debug, thiserror::Error)]
#[error("PD answered {code}: {message}")]
pub struct PdAnswered {
    pub code: u16,
    pub message: String,
}

impl PdAnswered {
    /// The request itself is at fault (4xx): asking again cannot help.
    pub fn is_request_error(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The [`PdAnswered`] somewhere in `error`'s chain, if PD answered at all.
    pub fn find(error: &anyhow::Error) -> Option<&PdAnswered> {
        error.chain().find_map(|e| e.downcast_ref::<PdAnswered>())
    }
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> Result<ureq::Response> {
    match result {
        Ok(response) => Ok(response),
        Err(ureq::Error::Status(code, response)) => {
            let status_text = response.status_text().to_string();
            let body = response.into_string().unwrap_or_default();
            let message = match error_message(&body) {
                m if m.is_empty() => status_text,
                m => m,
            };
            Err(PdAnswered { code, message }.into())
        }
        Err(ureq::Error::Transport(e)) => Err(anyhow!("cannot reach PD: {e}")),
    }
}

/// PD reports errors as `{"error": "..."}`; anything else is shown as sent, on one line.
pub fn error_message(body: &str) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    match parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| e.as_str())
    {
        Some(message) => message.to_string(),
        None => body.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_without_a_body_is_named_by_its_status() {
        let empty = ureq::Response::new(414, "URI Too Long", "").unwrap();
        let err = answer(Err(ureq::Error::Status(414, empty))).unwrap_err();
        let answered = PdAnswered::find(&err).unwrap();
        assert_eq!(answered.code, 414);
        assert_eq!(err.to_string(), "PD answered 414: URI Too Long");
        assert!(answered.is_request_error());
        let json =
            ureq::Response::new(503, "Service Unavailable", r#"{"error":"not ready"}"#).unwrap();
        let err = answer(Err(ureq::Error::Status(503, json))).unwrap_err();
        assert_eq!(err.to_string(), "PD answered 503: not ready");
        assert!(!PdAnswered::find(&err).unwrap().is_request_error());
    }

    #[test]
    fn urls_accept_bare_and_schemed_addresses() {
        assert_eq!(
            PdHttp::new("127.0.0.1:2380", None).unwrap().url("stores"),
            "http://127.0.0.1:2380/pd/api/v1/stores"
        );
        assert_eq!(
            PdHttp::new("http://127.0.0.1:2380/", None)
                .unwrap()
                .url("/region/id/4"),
            "http://127.0.0.1:2380/pd/api/v1/region/id/4"
        );
    }

    #[test]
    fn error_message_prefers_the_error_field() {
        assert_eq!(
            error_message(r#"{"error":"region 9 not found"}"#),
            "region 9 not found"
        );
        assert_eq!(error_message("plain\ntext"), "plain text");
    }
}
