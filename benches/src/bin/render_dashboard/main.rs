//! `render-dashboard`: draws the panels of a Grafana dashboard (by default the shipped
//! `deploy/grafana/shoal.json`) from a Prometheus server's data, so what the dashboard shows
//! can be seen without a Grafana.
//!
//! `render-dashboard --prometheus http://127.0.0.1:9090 --start 1796130000 --end 1796130300
//! --out target/dashboard` runs every panel's PromQL targets as range queries over the
//! window (Grafana's template variables filled in: `$__rate_interval` with `--rate-interval`,
//! `$__interval` with the step, the dashboard's own variables with their current value or a
//! match-all `.*`), and writes one PNG per panel (`NN-title.png`) and all panels in one grid
//! (`dashboard.png`). Panels whose queries return nothing are drawn empty, marked "no data",
//! and listed at the end.
//!
//! Exit codes: 0 when every query ran (with or without data); 1 when Prometheus is
//! unreachable; 2 for a dashboard that cannot be read or a bad window; 3 when Prometheus
//! rejected a panel's query (a broken expression in the dashboard: every panel is still drawn).

mod dashboard;
mod draw;
mod prometheus;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use dashboard::{legend_name, Panel, Variables};
use draw::{draw_grid_png, draw_panel_png, Line, PanelChart};
use prometheus::{Prometheus, QueryError, Range};

/// Size of each panel's own PNG.
const PANEL_SIZE: (u32, u32) = (900, 500);
/// Size of a panel in the grid.
const CELL_SIZE: (u32, u32) = (640, 420);
/// Samples per series when `--step` is not given: enough for smooth lines, few enough to
/// stay far below Prometheus's 11,000-point limit.
const AUTO_POINTS: f64 = 300.0;

#[derive(Parser, Debug)]
#[command(about = "Draws a Grafana dashboard's panels from a Prometheus server's data")]
struct Args {
    /// The Grafana dashboard JSON.
    #[arg(long, default_value = "deploy/grafana/shoal.json")]
    dashboard: PathBuf,
    /// The Prometheus server's URL.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    prometheus: String,
    /// Start of the window, unix seconds (default: `--last` before the end).
    #[arg(long)]
    start: Option<f64>,
    /// End of the window, unix seconds (default: now).
    #[arg(long)]
    end: Option<f64>,
    /// Length of the window when `--start` is not given.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    last: Duration,
    /// Resolution of the queries (default: the window over 300, at least 1 s).
    #[arg(long, value_parser = humantime::parse_duration)]
    step: Option<Duration>,
    /// What `$__rate_interval` stands for (Grafana's is four scrape intervals or more).
    #[arg(long, default_value = "1m")]
    rate_interval: String,
    /// Where the PNGs go.
    #[arg(long, env = "DASHBOARD_OUT", default_value = "target/dashboard")]
    out: PathBuf,
    /// Panels per row of `dashboard.png`.
    #[arg(long, default_value_t = 4)]
    columns: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json = match std::fs::read_to_string(&args.dashboard) {
        Ok(json) => json,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.dashboard.display());
            return ExitCode::from(2);
        }
    };
    let panels = match dashboard::panels(&json) {
        Ok(panels) => panels,
        Err(e) => {
            eprintln!("error: {}: {e}", args.dashboard.display());
            return ExitCode::from(2);
        }
    };
    let range = match window(&args) {
        Ok(range) => range,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let variables = Variables {
        rate_interval: args.rate_interval.clone(),
        interval: format!("{}s", range.step.as_secs().max(1)),
        range_secs: (range.end - range.start).round() as u64,
        values: Variables::dashboard_values(&json),
    };
    let prometheus = Prometheus::new(&args.prometheus);
    if let Err(e) = prometheus.check() {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }

    let mut charts = Vec::with_capacity(panels.len());
    let mut rejected = 0;
    for panel in &panels {
        match chart(&prometheus, &variables, panel, range) {
            Ok(chart) => {
                if chart.note.as_deref() == Some("query failed") {
                    rejected += 1;
                }
                charts.push(chart);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }

    let title = dashboard::title(&json).unwrap_or_else(|| "Dashboard".into());
    if let Err(e) = write_pngs(&args, &title, range, &charts) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    report(&args.out, &charts);
    if rejected > 0 {
        eprintln!("error: Prometheus rejected the queries of {rejected} panel(s); see above");
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

/// The query window from the arguments.
fn window(args: &Args) -> Result<Range, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs_f64();
    let end = args.end.unwrap_or(now);
    let start = args.start.unwrap_or(end - args.last.as_secs_f64());
    if !(start.is_finite() && end.is_finite() && start < end) {
        return Err(format!("the window {start} .. {end} is empty"));
    }
    let step = args.step.unwrap_or_else(|| {
        Duration::from_secs(((end - start) / AUTO_POINTS).round().max(1.0) as u64)
    });
    if step.is_zero() {
        return Err("--step must be above zero".into());
    }
    Ok(Range { start, end, step })
}

/// Runs the panel's queries. Only an unreachable Prometheus is an error; a rejected or
/// unreadable answer is reported and makes the panel a "query failed" one.
fn chart(
    prometheus: &Prometheus,
    variables: &Variables,
    panel: &Panel,
    range: Range,
) -> Result<PanelChart, QueryError> {
    let mut lines = Vec::new();
    let mut failed = false;
    for target in &panel.targets {
        let expr = variables.substitute(&target.expr);
        match prometheus.query_range(&expr, range) {
            Ok(series) => {
                let mut named: Vec<Line> = series
                    .into_iter()
                    .filter(|s| !s.points.is_empty())
                    .map(|s| Line {
                        name: legend_name(target.legend.as_deref(), &s.labels),
                        points: s.points,
                    })
                    .collect();
                // Prometheus returns series in no set order; sorted, each keeps its colour
                // from one rendering to the next.
                named.sort_by(|a, b| a.name.cmp(&b.name));
                lines.extend(named);
            }
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                eprintln!("panel {:?}: query {expr:?}: {e}", panel.title);
                failed = true;
            }
        }
    }
    let note = if failed {
        Some("query failed".to_string())
    } else if lines.is_empty() {
        Some("no data".to_string())
    } else {
        None
    };
    Ok(PanelChart {
        title: panel.title.clone(),
        unit: panel.unit.clone(),
        lines,
        note,
        start: range.start,
        end: range.end,
        step: range.step.as_secs_f64(),
    })
}

/// Writes `NN-title.png` per panel and `dashboard.png`, after removing the panel PNGs of an
/// earlier rendering (a renamed panel would otherwise leave its old picture behind).
fn write_pngs(
    args: &Args,
    title: &str,
    range: Range,
    charts: &[PanelChart],
) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.out)?;
    for entry in std::fs::read_dir(&args.out)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_panel_png)
        {
            std::fs::remove_file(&path)?;
        }
    }
    for (i, chart) in charts.iter().enumerate() {
        let path = args
            .out
            .join(format!("{:02}-{}.png", i + 1, slug(&chart.title)));
        draw_panel_png(&path, PANEL_SIZE, chart)?;
    }
    let heading = format!(
        "{title}: {} to {}, step {}s",
        draw::timestamp(range.start),
        draw::clock(range.end),
        range.step.as_secs()
    );
    draw_grid_png(
        &args.out.join("dashboard.png"),
        &heading,
        args.columns,
        CELL_SIZE,
        charts,
    )?;
    Ok(())
}

/// Names this tool gives panel PNGs: two digits, a dash, `.png`.
fn is_panel_png(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 7
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && b[2] == b'-'
        && name.ends_with(".png")
}

/// A file-name-safe form of a title: lower case, words joined by dashes.
fn slug(title: &str) -> String {
    let words: Vec<String> = title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if words.is_empty() {
        "panel".to_string()
    } else {
        words.join("-")
    }
}

/// One line per panel, then the panels without data.
fn report(out: &Path, charts: &[PanelChart]) {
    for chart in charts {
        match &chart.note {
            None => println!("{:>3} series  {}", chart.lines.len(), chart.title),
            Some(note) => println!("  {note:>12}  {}", chart.title),
        }
    }
    let empty: Vec<&str> = charts
        .iter()
        .filter(|c| c.note.as_deref() == Some("no data"))
        .map(|c| c.title.as_str())
        .collect();
    if empty.is_empty() {
        println!("every panel has data");
    } else {
        println!("panels without data: {}", empty.join(", "));
    }
    println!(
        "wrote {} panels to {} (dashboard.png and one PNG per panel)",
        charts.len(),
        out.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_panel_file_names() {
        assert_eq!(
            slug("gRPC requests / s by method"),
            "grpc-requests-s-by-method"
        );
        assert_eq!(
            slug("Disk full (writes refused)"),
            "disk-full-writes-refused"
        );
        assert_eq!(slug(" / "), "panel");
        assert!(is_panel_png("01-regions-per-store.png"));
        assert!(!is_panel_png("dashboard.png"));
        assert!(!is_panel_png("1-x.png"));
        assert!(!is_panel_png("01-x.txt"));
    }

    #[test]
    fn the_window_defaults_to_the_last_minutes_and_an_automatic_step() {
        let args = Args::parse_from(["render-dashboard", "--start", "1000", "--end", "1600"]);
        let range = window(&args).unwrap();
        assert_eq!((range.start, range.end), (1000.0, 1600.0));
        assert_eq!(range.step, Duration::from_secs(2));
        let args = Args::parse_from(["render-dashboard", "--end", "5000", "--last", "10s"]);
        let range = window(&args).unwrap();
        assert_eq!(range.start, 4990.0);
        assert_eq!(range.step, Duration::from_secs(1));
        let args = Args::parse_from(["render-dashboard", "--start", "5", "--end", "5"]);
        assert!(window(&args).is_err());
        let args = Args::parse_from(["render-dashboard", "--step", "0s"]);
        assert!(window(&args).is_err());
    }
}
