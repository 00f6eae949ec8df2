//! Panels as line charts: one PNG per panel and one grid of all of them, with Grafana's units
//! on the y axis, UTC wall-clock time on the x axis and the legend below each chart.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

/// A chart that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct DrawError {
    path: String,
    message: String,
}

/// One named line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    /// (unix seconds, value), in time order.
    pub points: Vec<(f64, f64)>,
}

/// Everything one panel's chart shows.
#[derive(Debug, Clone)]
pub struct PanelChart {
    pub title: String,
    pub unit: Option<String>,
    pub lines: Vec<Line>,
    /// Why there is nothing to draw (`no data`, `query failed`), shown in the title.
    pub note: Option<String>,
    /// The x axis: unix seconds.
    pub start: f64,
    pub end: f64,
    /// Seconds between samples; a longer gap breaks a line, as it does in Grafana.
    pub step: f64,
}

/// The 10 colours of matplotlib's "tab10": distinct from each other and readable on white.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const FONT: &str = "sans-serif";
const LEGEND_FONT_SIZE: u32 = 13;
const LEGEND_ROW_HEIGHT: u32 = 17;
/// More legend rows than this squeeze the chart; the rest is summed up as "+N more".
const MAX_LEGEND_ROWS: usize = 5;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws one panel into a PNG of `size` pixels.
pub fn draw_panel_png(path: &Path, size: (u32, u32), chart: &PanelChart) -> Result<(), DrawError> {
    let fail = |e: String| DrawError {
        path: path.display().to_string(),
        message: e,
    };
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    draw_panel(&root, chart).map_err(fail)?;
    root.present().map_err(|e| fail(e.to_string()))
}

/// Draws every panel into one PNG, `columns` panels of `cell` pixels per row, under a heading.
pub fn draw_grid_png(
    path: &Path,
    heading: &str,
    columns: usize,
    cell: (u32, u32),
    charts: &[PanelChart],
) -> Result<(), DrawError> {
    let fail = |e: String| DrawError {
        path: path.display().to_string(),
        message: e,
    };
    const HEADING_HEIGHT: u32 = 44;
    let columns = columns.max(1);
    let rows = charts.len().div_ceil(columns).max(1);
    let size = (
        cell.0 * columns as u32,
        HEADING_HEIGHT + cell.1 * rows as u32,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let (top, body) = root.split_vertically(HEADING_HEIGHT);
    top.draw(&Text::new(
        heading.to_string(),
        (12, 10),
        (FONT, 24).into_font().style(FontStyle::Bold).color(&BLACK),
    ))
    .map_err(|e| fail(e.to_string()))?;
    let cells = body.split_evenly((rows, columns));
    for (area, chart) in cells.iter().zip(charts) {
        // A thin frame keeps neighbouring panels apart, as Grafana's panel borders do.
        let (w, h) = area.dim_in_pixel();
        area.draw(&Rectangle::new(
            [(2, 2), (w as i32 - 3, h as i32 - 3)],
            RGBColor(210, 210, 210).stroke_width(1),
        ))
        .map_err(|e| fail(e.to_string()))?;
        draw_panel(&area.margin(4, 4, 4, 4), chart).map_err(fail)?;
    }
    root.present().map_err(|e| fail(e.to_string()))
}

/// One panel: title, axes, one line per series, legend below.
fn draw_panel(area: &Area<'_>, chart: &PanelChart) -> Result<(), String> {
    let (width, height) = area.dim_in_pixel();
    let legend_columns = if width >= 560 { 2 } else { 1 };
    let legend_rows = chart
        .lines
        .len()
        .div_ceil(legend_columns)
        .min(MAX_LEGEND_ROWS);
    let legend_height = if legend_rows == 0 {
        0
    } else {
        legend_rows as u32 * LEGEND_ROW_HEIGHT + 8
    };
    let (plot_area, legend_area) = area.split_vertically(height.saturating_sub(legend_height));

    let title = match &chart.note {
        Some(note) => format!("{} ({note})", chart.title),
        None => chart.title.clone(),
    };
    let (lo, hi) = y_range(&chart.lines);
    let (divisor, suffix) = axis_scale(chart.unit.as_deref(), lo.abs().max(hi.abs()));
    let (lo, hi) = (lo / divisor, hi / divisor);
    let x_range = chart.start..chart.end.max(chart.start + 1.0);
    let unit = chart.unit.clone();
    let y_label = |v: &f64| match suffix {
        Some(suffix) => format!("{} {suffix}", number(*v)),
        None => format_value(unit.as_deref(), *v),
    };
    let mut ctx = ChartBuilder::on(&plot_area)
        .caption(&title, (FONT, 18).into_font().style(FontStyle::Bold))
        .margin(8)
        .margin_right(16)
        .x_label_area_size(28)
        .y_label_area_size(78)
        .build_cartesian_2d(x_range, lo..hi)
        .map_err(|e| e.to_string())?;
    ctx.configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_labels(5)
        .y_labels(6)
        .x_label_formatter(&|t| clock(*t))
        .y_label_formatter(&y_label)
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())?;
    if chart.lines.is_empty() {
        let (w, h) = plot_area.dim_in_pixel();
        plot_area
            .draw(&Text::new(
                chart.note.clone().unwrap_or_else(|| "no data".into()),
                (w as i32 / 2 - 30, h as i32 / 2),
                (FONT, 16).into_font().color(&RGBColor(150, 150, 150)),
            ))
            .map_err(|e| e.to_string())?;
    }
    for (i, line) in chart.lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        for segment in segments(&line.points, chart.step) {
            let scaled = segment.iter().map(|&(t, v)| (t, v / divisor));
            if let [(t, v)] = segment {
                ctx.draw_series(std::iter::once(Circle::new(
                    (*t, v / divisor),
                    2,
                    color.filled(),
                )))
                .map_err(|e| e.to_string())?;
            } else {
                ctx.draw_series(LineSeries::new(scaled, color.stroke_width(2)))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    if legend_rows > 0 {
        draw_legend(&legend_area, &chart.lines, legend_columns, legend_rows)?;
    }
    Ok(())
}

/// The legend: a colour swatch and the series' name per entry, `columns` entries a row, names
/// cut to fit, and "+N more" in place of the last entry when they do not all fit.
fn draw_legend(area: &Area<'_>, lines: &[Line], columns: usize, rows: usize) -> Result<(), String> {
    let (width, _) = area.dim_in_pixel();
    let column_width = (width as i32 - 16) / columns as i32;
    // DejaVu Sans at 13 px averages about 7 px a character.
    let max_chars = ((column_width - 30) / 7).max(4) as usize;
    let slots = rows * columns;
    let style = (FONT, LEGEND_FONT_SIZE).into_font().color(&BLACK);
    for (i, line) in lines.iter().enumerate().take(slots) {
        let x = 12 + (i % columns) as i32 * column_width;
        let y = 4 + (i / columns) as i32 * LEGEND_ROW_HEIGHT as i32;
        if i + 1 == slots && lines.len() > slots {
            let more = format!("+{} more", lines.len() - i);
            area.draw(&Text::new(more, (x + 24, y), style.clone()))
                .map_err(|e| e.to_string())?;
            break;
        }
        let color = COLORS[i % COLORS.len()];
        let mid = y + LEGEND_ROW_HEIGHT as i32 / 2 - 1;
        area.draw(&PathElement::new(
            [(x, mid), (x + 18, mid)],
            color.stroke_width(3),
        ))
        .map_err(|e| e.to_string())?;
        area.draw(&Text::new(
            shorten(&line.name, max_chars),
            (x + 24, y),
            style.clone(),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// How the y axis of unit `unit` is scaled for values up to `max`: the divisor and the suffix
/// of every tick. Bytes are counted in one binary unit (KiB, MiB, GiB) across the axis, so
/// the ticks fall on round numbers of it (5 GiB, 10 GiB) rather than on round numbers of
/// bytes (4.66 GiB, 9.31 GiB). Other units keep their values and `format_value`'s labels.
fn axis_scale(unit: Option<&str>, max: f64) -> (f64, Option<&'static str>) {
    if unit != Some("bytes") {
        return (1.0, None);
    }
    const SUFFIXES: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut divisor, mut i) = (1.0, 0);
    while i + 1 < SUFFIXES.len() && max >= divisor * 1024.0 {
        divisor *= 1024.0;
        i += 1;
    }
    (divisor, Some(SUFFIXES[i]))
}

/// The y axis' range: from 0 (or the lowest value, if below) to a tenth above the highest,
/// never empty, as Grafana's soft-min-0 axes do.
fn y_range(lines: &[Line]) -> (f64, f64) {
    let values = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let lo = values().fold(0.0f64, f64::min);
    let hi = values().fold(0.0f64, f64::max);
    if hi - lo <= f64::EPSILON {
        // No data, or all zeros: a unit axis with the line along its floor.
        return (lo, lo + 1.0);
    }
    (
        lo - (hi - lo) * if lo < 0.0 { 0.1 } else { 0.0 },
        hi + (hi - lo) * 0.1,
    )
}

/// `points` cut wherever two samples are further apart than 2.5 steps: a series that was
/// absent for a while is drawn as separate pieces, not bridged by a straight line.
fn segments(points: &[(f64, f64)], step: f64) -> Vec<&[(f64, f64)]> {
    let mut out = Vec::new();
    let mut begin = 0;
    for i in 1..points.len() {
        if points[i].0 - points[i - 1].0 > step * 2.5 {
            out.push(&points[begin..i]);
            begin = i;
        }
    }
    if begin < points.len() {
        out.push(&points[begin..]);
    }
    out
}

/// `name` cut to `max` characters with an ellipsis.
fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_string();
    }
    let mut out: String = name.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Unix seconds as `HH:MM:SS` UTC.
pub fn clock(t: f64) -> String {
    let s = t.floor().rem_euclid(86_400.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn timestamp(t: f64) -> String {
    let days = (t / 86_400.0).floor() as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {} UTC", clock(t))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A value as Grafana shows it in unit `unit`: bytes in KiB/MiB/GiB, seconds scaled to µs, ms,
/// s, min or h, rates with their `ops/s` or `req/s`, and everything else ("short", none) with
/// k, M, G, T for thousands.
pub fn format_value(unit: Option<&str>, v: f64) -> String {
    match unit.unwrap_or("short") {
        "bytes" => scaled(v, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"]),
        "decbytes" => scaled(v, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"]),
        "s" => duration(v),
        "ms" => duration(v / 1e3),
        "us" | "µs" => duration(v / 1e6),
        "ops" => format!("{} ops/s", short(v)),
        "reqps" => format!("{} req/s", short(v)),
        "rps" => format!("{} rd/s", short(v)),
        "wps" => format!("{} wr/s", short(v)),
        "percent" => format!("{}%", number(v)),
        "percentunit" => format!("{}%", number(v * 100.0)),
        "none" => number(v),
        _ => short(v),
    }
}

/// Thousands as `k`, millions as `M` and so on, right after the number (`1.23k`).
fn short(v: f64) -> String {
    scaled(v, 1000.0, &["", "k", "M", "G", "T", "P"]).replace(' ', "")
}

/// `v` divided by `base` until it is below `base`, with the matching suffix.
fn scaled(v: f64, base: f64, suffixes: &[&str]) -> String {
    let mut v = v;
    let mut i = 0;
    while v.abs() >= base && i + 1 < suffixes.len() {
        v /= base;
        i += 1;
    }
    format!("{} {}", number(v), suffixes[i])
}

fn duration(secs: f64) -> String {
    let a = secs.abs();
    if a == 0.0 {
        "0 s".to_string()
    } else if a < 1e-3 {
        format!("{} µs", number(secs * 1e6))
    } else if a < 1.0 {
        format!("{} ms", number(secs * 1e3))
    } else if a < 60.0 {
        format!("{} s", number(secs))
    } else if a < 3600.0 {
        format!("{} min", number(secs / 60.0))
    } else {
        format!("{} h", number(secs / 3600.0))
    }
}

/// About three significant digits, without trailing zeros.
fn number(v: f64) -> String {
    let a = v.abs();
    let text = if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.2}")
    } else {
        // Below one: three significant digits, so 0.00123 stays readable.
        let decimals = (2 - a.log10().floor() as i32).clamp(2, 12) as usize;
        format!("{v:.decimals$}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    if text == "-0" {
        "0".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_in_the_panels_unit() {
        assert_eq!(format_value(Some("bytes"), 0.0), "0 B");
        assert_eq!(format_value(Some("bytes"), 1536.0), "1.5 KiB");
        assert_eq!(
            format_value(Some("bytes"), 123.0 * 1024.0 * 1024.0),
            "123 MiB"
        );
        assert_eq!(format_value(Some("bytes"), 50e9), "46.6 GiB");
        assert_eq!(format_value(Some("s"), 0.0), "0 s");
        assert_eq!(format_value(Some("s"), 0.0025), "2.5 ms");
        assert_eq!(format_value(Some("s"), 0.000_512), "512 µs");
        assert_eq!(format_value(Some("s"), 1.5), "1.5 s");
        assert_eq!(format_value(Some("s"), 90.0), "1.5 min");
        assert_eq!(format_value(Some("ms"), 250.0), "250 ms");
        assert_eq!(format_value(Some("ops"), 1234.0), "1.23k ops/s");
        assert_eq!(format_value(Some("reqps"), 0.5), "0.5 req/s");
        assert_eq!(format_value(Some("short"), 3.0), "3");
        assert_eq!(format_value(None, 2_500_000.0), "2.5M");
        assert_eq!(format_value(Some("percentunit"), 0.25), "25%");
        assert_eq!(format_value(Some("an unknown unit"), 12.34), "12.3");
        assert_eq!(format_value(None, -0.0001), "-0.0001");
        assert_eq!(format_value(None, 0.001_234_5), "0.00123");
    }

    #[test]
    fn byte_axes_count_in_one_binary_unit() {
        assert_eq!(axis_scale(Some("short"), 5e9), (1.0, None));
        assert_eq!(axis_scale(None, 5e9), (1.0, None));
        assert_eq!(axis_scale(Some("bytes"), 0.0), (1.0, Some("B")));
        assert_eq!(axis_scale(Some("bytes"), 1023.0), (1.0, Some("B")));
        assert_eq!(
            axis_scale(Some("bytes"), 80e6),
            (1024.0 * 1024.0, Some("MiB"))
        );
        assert_eq!(
            axis_scale(Some("bytes"), 18e9),
            (1024.0 * 1024.0 * 1024.0, Some("GiB"))
        );
        assert_eq!(axis_scale(Some("bytes"), 1e18).1, Some("TiB"));
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(clock(0.0), "00:00:00");
        assert_eq!(clock(3_723.9), "01:02:03");
        assert_eq!(timestamp(0.0), "1970-01-01 00:00:00 UTC");
        // 2026-12-01 13:05:00 UTC.
        assert_eq!(timestamp(1_796_130_300.0), "2026-12-01 13:05:00 UTC");
        assert_eq!(timestamp(951_782_400.0), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn lines_break_at_gaps() {
        let points = [
            (0.0, 1.0),
            (5.0, 1.0),
            (10.0, 1.0),
            (60.0, 2.0),
            (65.0, 2.0),
            (200.0, 3.0),
        ];
        let pieces = segments(&points, 5.0);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0].len(), 3);
        assert_eq!(pieces[1], &[(60.0, 2.0), (65.0, 2.0)]);
        assert_eq!(pieces[2], &[(200.0, 3.0)]);
        assert!(segments(&[], 5.0).is_empty());
    }

    #[test]
    fn the_y_axis_starts_at_zero_and_is_never_empty() {
        let line = |values: &[f64]| Line {
            name: "x".into(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, *v))
                .collect(),
        };
        assert_eq!(y_range(&[]), (0.0, 1.0));
        assert_eq!(y_range(&[line(&[0.0, 0.0])]), (0.0, 1.0));
        let (lo, hi) = y_range(&[line(&[3.0, 3.0])]);
        assert_eq!(lo, 0.0);
        assert!((hi - 3.3).abs() < 1e-9, "{hi}");
        let (lo, hi) = y_range(&[line(&[2.0, 10.0])]);
        assert_eq!(lo, 0.0);
        assert!((hi - 11.0).abs() < 1e-9, "{hi}");
        let (lo, hi) = y_range(&[line(&[-10.0, 10.0])]);
        assert!(lo < -10.0 && hi > 10.0);
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("a rather long name", 8), "a rathe…");
    }

    #[test]
    fn draws_panels_and_a_grid() {
        let dir = tempfile::tempdir().unwrap();
        let chart = PanelChart {
            title: "Leaders per store".into(),
            unit: Some("short".into()),
            lines: (0..3)
                .map(|s| Line {
                    name: format!("127.0.0.1:2018{s}"),
                    points: (0..60)
                        .map(|i| (1e9 + i as f64 * 5.0, (s * i) as f64))
                        .collect(),
                })
                .collect(),
            note: None,
            start: 1e9,
            end: 1e9 + 300.0,
            step: 5.0,
        };
        let empty = PanelChart {
            lines: Vec::new(),
            note: Some("no data".into()),
            ..chart.clone()
        };
        let one = dir.path().join("one.png");
        draw_panel_png(&one, (900, 500), &chart).unwrap();
        let grid = dir.path().join("grid.png");
        draw_grid_png(&grid, "Shoal", 3, (600, 400), &[chart, empty]).unwrap();
        for path in [one, grid] {
            let bytes = std::fs::read(&path).unwrap();
            assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{path:?}");
            assert!(bytes.len() > 5_000, "{path:?}: {} bytes", bytes.len());
        }
    }
}
