//! Range queries against a Prometheus server's HTTP API (`/api/v1/query_range`) and the
//! parsing of its answers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// How long one request may take before the server counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a query gave no series.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No answer at all (refused, reset, timed out): nothing else can work either.
    #[error("Prometheus at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    /// Prometheus answered and refused the query (a bad expression, a too-fine step).
    #[error("Prometheus rejected the query ({kind}): {message}")]
    Rejected { kind: String, message: String },
    /// An answer that is not the API's JSON.
    #[error("Prometheus's answer cannot be read: {0}")]
    Malformed(String),
}

impl QueryError {
    /// Errors after which no other query can succeed either.
    pub fn is_fatal(&self) -> bool {
        matches!(self, QueryError::Unreachable { .. })
    }
}

/// One series of a range query: its labels and its (unix seconds, value) samples. Samples
/// that are not finite numbers (`NaN` from a quantile of no observations, `+Inf`) are left
/// out, as Grafana leaves them undrawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

/// The window and resolution of every query of one rendering.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// Unix seconds.
    pub start: f64,
    /// Unix seconds.
    pub end: f64,
    pub step: Duration,
}

/// A Prometheus server's HTTP API.
pub struct Prometheus {
    base: String,
    agent: ureq::Agent,
}

impl Prometheus {
    /// `base` is the server's URL, e.g. `http://127.0.0.1:9090`.
    pub fn new(base: &str) -> Self {
        Prometheus {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build(),
        }
    }

    /// Checks the server answers at all, so an unreachable one is reported once and early.
    pub fn check(&self) -> Result<(), QueryError> {
        let url = format!("{}/api/v1/status/buildinfo", self.base);
        match self.agent.get(&url).call() {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, _)) => Err(QueryError::Unreachable {
                url,
                message: format!("HTTP {code}; is it a Prometheus server?"),
            }),
            Err(e) => Err(QueryError::Unreachable {
                url,
                message: e.to_string(),
            }),
        }
    }

    /// The series of `expr` over `range`.
    pub fn query_range(&self, expr: &str, range: Range) -> Result<Vec<Series>, QueryError> {
        let url = format!("{}/api/v1/query_range", self.base);
        let step = format!("{}", range.step.as_secs_f64());
        let answer = self
            .agent
            .get(&url)
            .query("query", expr)
            .query("start", &format!("{:.3}", range.start))
            .query("end", &format!("{:.3}", range.end))
            .query("step", &step)
            .call();
        let body = match answer {
            Ok(response) => response
                .into_string()
                .map_err(|e| QueryError::Malformed(e.to_string()))?,
            // A refused query comes with a 400 or 422 and the API's error JSON.
            Err(ureq::Error::Status(code, response)) => {
                let body = response.into_string().unwrap_or_default();
                return Err(match parse_matrix(&body) {
                    Err(e @ QueryError::Rejected { .. }) => e,
                    _ => QueryError::Rejected {
                        kind: format!("HTTP {code}"),
                        message: body.chars().take(200).collect(),
                    },
                });
            }
            Err(e) => {
                return Err(QueryError::Unreachable {
                    url,
                    message: e.to_string(),
                })
            }
        };
        parse_matrix(&body)
    }
}

/// The series of a `query_range` answer:
/// `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{..},"values":[[t,"v"],..]}]}}`,
/// or the error it carries (`{"status":"error","errorType":..,"error":..}`).
pub fn parse_matrix(body: &str) -> Result<Vec<Series>, QueryError> {
    let answer: Value =
        serde_json::from_str(body).map_err(|e| QueryError::Malformed(e.to_string()))?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    match text(&answer, "status").as_deref() {
        Some("success") => {}
        Some("error") => {
            return Err(QueryError::Rejected {
                kind: text(&answer, "errorType").unwrap_or_else(|| "error".into()),
                message: text(&answer, "error").unwrap_or_default(),
            })
        }
        other => {
            return Err(QueryError::Malformed(format!(
                "status {}",
                other.unwrap_or("missing")
            )))
        }
    }
    let data = answer
        .get("data")
        .ok_or_else(|| QueryError::Malformed("no data".into()))?;
    match data.get("resultType").and_then(Value::as_str) {
        Some("matrix") => {}
        other => {
            return Err(QueryError::Malformed(format!(
                "result type {} where a range query gives a matrix",
                other.unwrap_or("missing")
            )))
        }
    }
    let result = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| QueryError::Malformed("no result list".into()))?;
    result.iter().map(series).collect()
}

fn series(v: &Value) -> Result<Series, QueryError> {
    let malformed = |what: &str| QueryError::Malformed(format!("a series with {what}"));
    let labels = v
        .get("metric")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("no labels"))?
        .iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|v| (k.clone(), v.to_string()))
                .ok_or_else(|| malformed("a label that is not a string"))
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let values = v
        .get("values")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no values"))?;
    let mut points = Vec::with_capacity(values.len());
    for pair in values {
        let (t, value) = match pair.as_array().map(Vec::as_slice) {
            Some([t, value]) => (t, value),
            _ => return Err(malformed("a sample that is not [time, value]")),
        };
        let t = t
            .as_f64()
            .ok_or_else(|| malformed("a time that is not a number"))?;
        // Values come as strings so NaN and the infinities can be written.
        let value: f64 = value
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("a value that is not a number"))?;
        if value.is_finite() {
            points.push((t, value));
        }
    }
    Ok(Series { labels, points })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_answer_becomes_series() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"instance":"127.0.0.1:20180","job":"shoal-store"},
             "values":[[1700000000,"1"],[1700000005.5,"2.5"],[1700000010,"NaN"],[1700000015,"+Inf"]]},
            {"metric":{},"values":[[1700000000,"-3e2"]]}
        ]}}"#;
        let series = parse_matrix(body).unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels["instance"], "127.0.0.1:20180");
        assert_eq!(series[0].labels["job"], "shoal-store");
        assert_eq!(
            series[0].points,
            [(1_700_000_000.0, 1.0), (1_700_000_005.5, 2.5)],
            "NaN and +Inf are not drawn"
        );
        assert!(series[1].labels.is_empty());
        assert_eq!(series[1].points, [(1_700_000_000.0, -300.0)]);
    }

    #[test]
    fn an_empty_result_is_no_series() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_matrix(body).unwrap().is_empty());
    }

    #[test]
    fn an_error_answer_is_a_rejection() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"1:6: parse error: unexpected end of input"}"#;
        match parse_matrix(body) {
            Err(QueryError::Rejected { kind, message }) => {
                assert_eq!(kind, "bad_data");
                assert!(message.contains("parse error"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!parse_matrix(body).unwrap_err().is_fatal());
    }

    #[test]
    fn answers_of_another_shape_are_malformed() {
        for body in [
            "<html>",
            r#"{"status":"success"}"#,
            r#"{"data":{"resultType":"matrix","result":[]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"values":[]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":1},"values":[]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1]]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[["1","2"]]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}"#,
        ] {
            assert!(
                matches!(parse_matrix(body), Err(QueryError::Malformed(_))),
                "{body}"
            );
        }
    }
}
