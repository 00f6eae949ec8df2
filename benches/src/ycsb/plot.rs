//! Throughput and p99 latency over time as a PNG: one line per phase, throughput on top, p99
//! below, so a stall shows as a dip above and a spike below at the same second.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::report::Summary;

#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The legend names the client API (and transaction mode) too, so raw and txn runs of one
/// workload tell apart.
fn label(s: &Summary) -> String {
    format!(
        "{} {} {} {}",
        s.params.target,
        s.params.api_label(),
        s.params.workload,
        s.params.phase
    )
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One panel: seconds on x, `0..max_y` (with headroom) on y, a mesh with its labels.
fn timeline_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    y_desc: &str,
    max_t: f64,
    max_y: f64,
) -> Result<Chart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_t, 0.0..max_y * 1.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// Draws every summary's timeline into `path` (PNG, 1200x800), each named by its store, API,
/// workload and phase.
pub fn draw_timelines(path: &Path, runs: &[Summary]) -> Result<(), PlotError> {
    let names: Vec<String> = runs.iter().map(label).collect();
    draw_named_timelines(path, runs, &names)
}

/// Like `draw_timelines`, with the legend's names given (`names[i]` for `runs[i]`), for runs
/// the parameters do not tell apart (the same workload before and after a change).
pub fn draw_named_timelines(
    path: &Path,
    runs: &[Summary],
    names: &[String],
) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(400);
    let max_t = runs
        .iter()
        .flat_map(|r| r.timeline.iter().map(|p| p.t))
        .fold(1.0f64, f64::max);
    let max_ops = runs
        .iter()
        .flat_map(|r| r.timeline.iter().map(|p| p.ops_per_sec))
        .fold(1.0f64, f64::max);
    let max_p99_ms = runs
        .iter()
        .flat_map(|r| r.timeline.iter().map(|p| p.p99_us as f64 / 1000.0))
        .fold(1.0f64, f64::max);

    let mut ops_chart = timeline_chart(&top, "throughput (ops/s)", "ops/s", max_t, max_ops)
        .map_err(|e| fail(&e))?;
    let mut p99_chart = timeline_chart(&bottom, "p99 latency (ms)", "ms", max_t, max_p99_ms)
        .map_err(|e| fail(&e))?;

    for (i, run) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let name = names.get(i).cloned().unwrap_or_else(|| label(run));
        ops_chart
            .draw_series(LineSeries::new(
                run.timeline.iter().map(|p| (p.t, p.ops_per_sec)),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        p99_chart
            .draw_series(LineSeries::new(
                run.timeline.iter().map(|p| (p.t, p.p99_us as f64 / 1000.0)),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    for chart in [&mut ops_chart, &mut p99_chart] {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ycsb::recorder::{TaskStats, TimelinePoint};
    use crate::ycsb::report::RunParameters;

    #[test]
    fn draws_a_png_of_the_timeline() {
        let timeline = (1..=10)
            .map(|t| TimelinePoint {
                t: t as f64,
                ops_per_sec: 1000.0 + t as f64 * 10.0,
                p99_us: 2000 + t * 100,
                errors: 0,
                aborts: 0,
            })
            .collect();
        let summary = Summary::new(
            RunParameters {
                target: "shoal".into(),
                api: "raw".into(),
                txn_mode: None,
                workload: "A".into(),
                phase: "run".into(),
                distribution: "zipfian".into(),
                records: 10,
                concurrency: 1,
                value_size: 1,
                seed: 0,
            },
            &TaskStats::default(),
            10.0,
            timeline,
            Vec::new(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.png");
        assert_eq!(label(&summary), "shoal raw A run");
        draw_timelines(&path, &[summary]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        assert!(
            bytes.len() > 10_000,
            "an empty canvas: {} bytes",
            bytes.len()
        );
    }
}
