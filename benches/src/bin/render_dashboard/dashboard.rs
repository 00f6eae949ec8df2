//! What a Grafana dashboard asks Prometheus for: its panels, their queries and legends, and
//! the values its template variables stand for when no Grafana is there to fill them in.

use std::collections::BTreeMap;

use serde_json::Value;

/// A dashboard file that is not what Grafana would import.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("the dashboard is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the dashboard has no `panels` list")]
    NoPanels,
}

/// One query of a panel: a PromQL expression and how Grafana names its series.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The PromQL expression as the dashboard holds it (template variables not yet replaced).
    pub expr: String,
    /// Grafana's `legendFormat`, e.g. `{{instance}}`; `None` when absent or `__auto`.
    pub legend: Option<String>,
}

/// One chart of the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub id: Option<i64>,
    pub title: String,
    /// Grafana's unit id (`s`, `bytes`, `ops`, `short`, ...), if the panel sets one.
    pub unit: Option<String>,
    pub targets: Vec<Target>,
}

/// The dashboard's title, if it has one.
pub fn title(json: &str) -> Option<String> {
    let dashboard: Value = serde_json::from_str(json).ok()?;
    let dashboard = dashboard.get("dashboard").unwrap_or(&dashboard);
    Some(dashboard.get("title")?.as_str()?.to_string())
}

/// The panels of a dashboard that query something, in the order Grafana lays them out (top
/// to bottom, left to right). Rows are only headings; the panels of a collapsed row sit in
/// the row's own `panels` list and are taken from there.
pub fn panels(json: &str) -> Result<Vec<Panel>, DashboardError> {
    let dashboard: Value = serde_json::from_str(json)?;
    // An export made with "share externally" wraps the dashboard in a `dashboard` field.
    let dashboard = dashboard.get("dashboard").unwrap_or(&dashboard);
    let list = dashboard
        .get("panels")
        .and_then(Value::as_array)
        .ok_or(DashboardError::NoPanels)?;
    let mut flat: Vec<&Value> = Vec::new();
    for panel in list {
        if panel.get("type").and_then(Value::as_str) == Some("row") {
            if let Some(nested) = panel.get("panels").and_then(Value::as_array) {
                flat.extend(nested);
            }
        } else {
            flat.push(panel);
        }
    }
    let mut panels: Vec<(i64, i64, Panel)> = flat
        .into_iter()
        .filter_map(|p| {
            let panel = panel(p)?;
            let pos = |k: &str| {
                p.pointer(&format!("/gridPos/{k}"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            Some((pos("y"), pos("x"), panel))
        })
        .collect();
    // Stable, so panels without positions keep the file's order.
    panels.sort_by_key(|(y, x, _)| (*y, *x));
    Ok(panels.into_iter().map(|(_, _, p)| p).collect())
}

/// A panel with at least one visible PromQL target, or `None`.
fn panel(p: &Value) -> Option<Panel> {
    let targets: Vec<Target> = p
        .get("targets")
        .and_then(Value::as_array)?
        .iter()
        .filter(|t| t.get("hide").and_then(Value::as_bool) != Some(true))
        .filter_map(|t| {
            let expr = t.get("expr").and_then(Value::as_str)?.trim();
            if expr.is_empty() {
                return None;
            }
            let legend = t
                .get("legendFormat")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty() && *l != "__auto")
                .map(str::to_string);
            Some(Target {
                expr: expr.to_string(),
                legend,
            })
        })
        .collect();
    if targets.is_empty() {
        return None;
    }
    let unit = p
        .pointer("/fieldConfig/defaults/unit")
        // The old graph panel keeps its unit in the left y axis.
        .or_else(|| p.pointer("/yaxes/0/format"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    Some(Panel {
        id: p.get("id").and_then(Value::as_i64),
        title: p
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        unit,
        targets,
    })
}

/// What Grafana would put in for its template variables when it runs a query.
#[derive(Debug, Clone)]
pub struct Variables {
    /// `$__rate_interval`, e.g. `1m`.
    pub rate_interval: String,
    /// `$__interval`: the query's step, e.g. `15s`.
    pub interval: String,
    /// `$__range` in whole seconds.
    pub range_secs: u64,
    /// The dashboard's own variables with a single current value; every other one matches
    /// anything.
    pub values: BTreeMap<String, String>,
}

impl Variables {
    /// The current values of the dashboard's own template variables (`templating.list`),
    /// where one is set and is not "All"; the others will match everything.
    pub fn dashboard_values(json: &str) -> BTreeMap<String, String> {
        let Ok(dashboard) = serde_json::from_str::<Value>(json) else {
            return BTreeMap::new();
        };
        let dashboard = dashboard.get("dashboard").unwrap_or(&dashboard);
        let Some(list) = dashboard
            .pointer("/templating/list")
            .and_then(Value::as_array)
        else {
            return BTreeMap::new();
        };
        list.iter()
            .filter_map(|v| {
                let name = v.get("name")?.as_str()?;
                let value = v.pointer("/current/value")?.as_str()?;
                (value != "$__all" && value != "All" && !value.is_empty())
                    .then(|| (name.to_string(), value.to_string()))
            })
            .collect()
    }

    /// The value of variable `name` (without `$`), and whether it is a regex matching all.
    fn value(&self, name: &str) -> (String, bool) {
        match name {
            "__rate_interval" => (self.rate_interval.clone(), false),
            "__interval" => (self.interval.clone(), false),
            "__interval_ms" => (
                humantime::parse_duration(&self.interval)
                    .map(|d| d.as_millis().to_string())
                    .unwrap_or_else(|_| "15000".into()),
                false,
            ),
            "__range" => (format!("{}s", self.range_secs), false),
            "__range_s" => (self.range_secs.to_string(), false),
            "__range_ms" => ((self.range_secs * 1000).to_string(), false),
            _ => match self.values.get(name) {
                Some(v) => (v.clone(), false),
                None => (".*".to_string(), true),
            },
        }
    }

    /// `expr` with every `$name`, `${name}`, `${name:format}` and `[[name]]` replaced. A
    /// variable that matches everything becomes `.*`, and an exact matcher on it (`="$x"`)
    /// becomes a regex one (`=~".*"`), since `=".*"` would match only the literal text.
    pub fn substitute(&self, expr: &str) -> String {
        let mut out = String::with_capacity(expr.len());
        let mut rest = expr;
        while let Some(at) = rest.find(['$', '[']) {
            let (before, from) = rest.split_at(at);
            out.push_str(before);
            let Some((name, used)) = variable_at(from) else {
                // Not a variable: a `$` on its own or a range selector like `[1m]`.
                let c = from.chars().next().unwrap_or('$');
                out.push(c);
                rest = &from[c.len_utf8()..];
                continue;
            };
            let (value, match_all) = self.value(name);
            if match_all && out.ends_with("=\"") && !out.ends_with("~=\"") && !out.ends_with("!=\"")
            {
                out.truncate(out.len() - 2);
                out.push_str("=~\"");
            }
            out.push_str(&value);
            rest = &from[used..];
        }
        out.push_str(rest);
        out
    }
}

/// The variable reference at the start of `s` (which starts with `$` or `[`): its name and
/// how many bytes the reference takes.
fn variable_at(s: &str) -> Option<(&str, usize)> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if let Some(inner) = s.strip_prefix("${") {
        let end = inner.find('}')?;
        let name = inner[..end].split(':').next()?;
        (!name.is_empty() && name.chars().all(is_name)).then_some((name, end + 3))
    } else if let Some(inner) = s.strip_prefix("[[") {
        let end = inner.find("]]")?;
        let name = inner[..end].split(':').next()?;
        (!name.is_empty() && name.chars().all(is_name)).then_some((name, end + 4))
    } else if let Some(inner) = s.strip_prefix('$') {
        // `$1` is a regex capture (label_replace), never a Grafana variable.
        if !inner.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return None;
        }
        let len = inner.find(|c| !is_name(c)).unwrap_or(inner.len());
        Some((&inner[..len], len + 1))
    } else {
        None
    }
}

/// A series' name as Grafana shows it: `legend` with each `{{label}}` replaced by that label's
/// value (empty when the series lacks it), or, with no legend (or one that comes out blank),
/// Prometheus's own `name{label="value",...}`.
pub fn legend_name(legend: Option<&str>, labels: &BTreeMap<String, String>) -> String {
    if let Some(format) = legend {
        let mut out = String::new();
        let mut rest = format;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                out.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let label = after[..close].trim();
            out.push_str(labels.get(label).map(String::as_str).unwrap_or(""));
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
        if !out.is_empty() {
            return out;
        }
    }
    let name = labels.get("__name__").map(String::as_str).unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    if rest.is_empty() && name.is_empty() {
        "{}".to_string()
    } else if rest.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", rest.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DASHBOARD: &str = r#"{
      "title": "t",
      "templating": {"list": [
        {"name": "job", "current": {"value": "shoal-store"}},
        {"name": "instance", "current": {"value": "$__all"}}
      ]},
      "panels": [
        {"type": "row", "title": "Stores", "gridPos": {"x": 0, "y": 0}},
        {"id": 3, "type": "timeseries", "title": "Right", "gridPos": {"x": 12, "y": 1},
         "fieldConfig": {"defaults": {"unit": "ops"}},
         "targets": [{"expr": "rate(a_total[1m])", "legendFormat": "{{instance}}"}]},
        {"id": 2, "type": "timeseries", "title": "Left", "gridPos": {"x": 0, "y": 1},
         "targets": [
           {"expr": "b", "legendFormat": "__auto"},
           {"expr": "c", "hide": true},
           {"expr": "  "}
         ]},
        {"id": 4, "type": "text", "title": "Notes", "gridPos": {"x": 0, "y": 2}},
        {"type": "row", "title": "Collapsed", "collapsed": true, "gridPos": {"x": 0, "y": 9},
         "panels": [
           {"id": 5, "type": "graph", "title": "Nested", "gridPos": {"x": 0, "y": 10},
            "yaxes": [{"format": "bytes"}, {"format": "short"}],
            "targets": [{"expr": "d"}]}
         ]}
      ]
    }"#;

    #[test]
    fn panels_in_layout_order_with_their_targets_and_units() {
        let panels = panels(DASHBOARD).unwrap();
        let titles: Vec<&str> = panels.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["Left", "Right", "Nested"]);
        assert_eq!(
            panels[0].targets,
            [Target {
                expr: "b".into(),
                legend: None
            }],
            "hidden and blank targets are skipped, __auto is no legend"
        );
        assert_eq!(panels[0].unit, None);
        assert_eq!(panels[1].id, Some(3));
        assert_eq!(panels[1].unit.as_deref(), Some("ops"));
        assert_eq!(panels[1].targets[0].expr, "rate(a_total[1m])");
        assert_eq!(panels[1].targets[0].legend.as_deref(), Some("{{instance}}"));
        assert_eq!(panels[2].unit.as_deref(), Some("bytes"));
    }

    #[test]
    fn the_shipped_dashboard_has_its_twenty_six_panels() {
        let json = include_str!("../../../../deploy/grafana/shoal.json");
        let panels = panels(json).unwrap();
        assert_eq!(panels.len(), 26);
        assert!(panels.iter().all(|p| !p.title.is_empty()));
        assert_eq!(panels[0].title, "Regions per store");
        assert_eq!(panels[24].title, "Snapshot ingest p99");
        assert_eq!(panels[25].title, "Snapshot files on disk");
        assert_eq!(panels[25].unit.as_deref(), Some("bytes"));
        assert_eq!(title(DASHBOARD).as_deref(), Some("t"));
    }

    #[test]
    fn bad_dashboards_are_errors() {
        assert!(matches!(panels("{"), Err(DashboardError::Json(_))));
        assert!(matches!(
            panels(r#"{"title": "x"}"#),
            Err(DashboardError::NoPanels)
        ));
        let wrapped = r#"{"dashboard": {"panels": [{"title": "x", "targets": [{"expr": "up"}]}]}}"#;
        assert_eq!(panels(wrapped).unwrap()[0].title, "x");
    }

    fn variables() -> Variables {
        Variables {
            rate_interval: "1m".into(),
            interval: "15s".into(),
            range_secs: 300,
            values: Variables::dashboard_values(DASHBOARD),
        }
    }

    #[test]
    fn the_dashboards_single_values_are_kept_and_all_is_dropped() {
        let values = Variables::dashboard_values(DASHBOARD);
        assert_eq!(values.len(), 1);
        assert_eq!(values["job"], "shoal-store");
        assert!(Variables::dashboard_values("not json").is_empty());
    }

    #[test]
    fn grafana_variables_are_replaced() {
        let v = variables();
        assert_eq!(
            v.substitute("rate(x_total[$__rate_interval])"),
            "rate(x_total[1m])"
        );
        assert_eq!(
            v.substitute("avg_over_time(x[${__interval}]) / $__range_s + [[__range]]"),
            "avg_over_time(x[15s]) / 300 + 300s"
        );
        assert_eq!(v.substitute("x{job=\"$job\"}"), "x{job=\"shoal-store\"}");
        assert_eq!(
            v.substitute("x{instance=~\"$instance\", job=\"${job:regex}\"}"),
            "x{instance=~\".*\", job=\"shoal-store\"}"
        );
        // An exact matcher on a match-all variable becomes a regex one.
        assert_eq!(
            v.substitute("x{instance=\"$instance\"}"),
            "x{instance=~\".*\"}"
        );
        assert_eq!(
            v.substitute("x{instance!=\"$other\"}"),
            "x{instance!=\".*\"}"
        );
        // Nothing that is not a variable changes.
        for expr in [
            "histogram_quantile(0.99, sum by (le) (rate(a_bucket[1m])))",
            "x{a=\"$\"} + y[5m:1m]",
            "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")",
        ] {
            assert_eq!(v.substitute(expr), expr);
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn legends_follow_legend_format() {
        let l = labels(&[
            ("__name__", "up"),
            ("instance", "127.0.0.1:20180"),
            ("job", "shoal-store"),
        ]);
        assert_eq!(legend_name(Some("{{instance}}"), &l), "127.0.0.1:20180");
        assert_eq!(
            legend_name(Some("{{ job }} {{instance}}"), &l),
            "shoal-store 127.0.0.1:20180"
        );
        assert_eq!(legend_name(Some("region {{result}}"), &l), "region");
        assert_eq!(legend_name(Some("tso"), &l), "tso");
        assert_eq!(legend_name(Some("a {{job"), &l), "a {{job");
        // No legend, or a blank one: Prometheus's name.
        assert_eq!(
            legend_name(None, &l),
            "up{instance=\"127.0.0.1:20180\",job=\"shoal-store\"}"
        );
        assert_eq!(legend_name(Some("{{method}}"), &labels(&[])), "{}");
        assert_eq!(
            legend_name(None, &labels(&[("method", "raw_get")])),
            "{method=\"raw_get\"}"
        );
    }
}
