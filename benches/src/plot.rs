//! `paxlog-bench plot`: SVG line charts of scaling sweeps, from the JSON lines that
//! `benches/sweep.sh` writes (one `paxlog-bench produce --json` result per line, with the
//! sweep's name and x value added). One chart per sweep: throughput (MB/s and msgs/s) and
//! p99 latency against the swept setting, on a logarithmic x axis.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One measured point of a sweep.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Point {
    /// The sweep it belongs to (`partitions`, `producers`, `record_size`, `nodes`).
    pub sweep: String,
    /// The swept setting's value.
    pub x: f64,
    /// Records acknowledged per second.
    pub msgs_per_sec: f64,
    /// Megabytes of record values acknowledged per second.
    pub mb_per_sec: f64,
    /// Latency percentiles of the run.
    pub latency: PointLatency,
}

/// The latency fields a chart uses, in microseconds.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct PointLatency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
}

/// Reads the points of a sweep file; lines that are not points (e.g. a failover result)
/// are skipped, a line that is not JSON is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Point>, String> {
    let mut points = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
        if value.get("sweep").is_some() {
            let point = serde_json::from_value(value)
                .map_err(|e| format!("line {}: not a sweep point: {e}", i + 1))?;
            points.push(point);
        }
    }
    Ok(points)
}

/// One SVG chart per sweep, by sweep name.
pub fn charts(points: &[Point]) -> BTreeMap<String, String> {
    let mut by_sweep: BTreeMap<&str, Vec<&Point>> = BTreeMap::new();
    for p in points {
        by_sweep.entry(p.sweep.as_str()).or_default().push(p);
    }
    by_sweep
        .into_iter()
        .map(|(sweep, mut pts)| {
            pts.sort_by(|a, b| a.x.total_cmp(&b.x));
            (sweep.to_owned(), chart(sweep, &pts))
        })
        .collect()
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 64.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 44.0;

/// Throughput (left axis, MB/s) and p99 latency (right axis, ms) of one sweep.
fn chart(sweep: &str, points: &[&Point]) -> String {
    let xs: Vec<f64> = points
        .iter()
        .map(|p| p.x.max(f64::MIN_POSITIVE).log2())
        .collect();
    let (x_min, x_max) = bounds(&xs);
    let mb: Vec<f64> = points.iter().map(|p| p.mb_per_sec).collect();
    let p99: Vec<f64> = points
        .iter()
        .map(|p| p.latency.p99_us as f64 / 1000.0)
        .collect();
    let mb_top = nice_top(mb.iter().copied().fold(0.0, f64::max));
    let ms_top = nice_top(p99.iter().copied().fold(0.0, f64::max));
    let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * (WIDTH - LEFT - RIGHT);
    let py = |y: f64, top: f64| HEIGHT - BOTTOM - y / top * (HEIGHT - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="{LEFT}" y="20" font-size="13">paxlog: {} (MB/s solid, p99 ms dashed)</text>"#,
        escape(sweep)
    );
    // Axes and ticks: each measured x, and five steps of both y axes.
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
    let _ = write!(
        svg,
        r##"<path d="M{x0},{y1}V{y0}H{x1}V{y1}" fill="none" stroke="#444"/>"##
    );
    for (p, x) in points.iter().zip(&xs) {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            px(*x),
            y0 + 16.0,
            label(p.x)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
        (x0 + x1) / 2.0,
        HEIGHT - 8.0,
        escape(sweep)
    );
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let y = py(f * mb_top, mb_top);
        let _ = write!(
            svg,
            r##"<path d="M{x0},{y:.1}H{x1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}">{}</text>"##,
            x0 - 4.0,
            y + 4.0,
            label(f * mb_top),
            x1 + 4.0,
            y + 4.0,
            label(f * ms_top)
        );
    }
    let line = |values: &[f64], top: f64, style: &str| {
        let d: Vec<String> = xs
            .iter()
            .zip(values)
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y, top)))
            .collect();
        format!(
            r#"<polyline points="{}" fill="none" {style}/>"#,
            d.join(" ")
        )
    };
    svg.push_str(&line(&mb, mb_top, r##"stroke="#1f77b4" stroke-width="2""##));
    svg.push_str(&line(
        &p99,
        ms_top,
        r##"stroke="#d62728" stroke-width="1.5" stroke-dasharray="5,3""##,
    ));
    for ((p, x), y) in points.iter().zip(&xs).zip(&mb) {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f77b4"><title>{} msgs/s</title></circle>"##,
            px(*x),
            py(*y, mb_top),
            p.msgs_per_sec.round()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The x range; a single point gets a unit-wide range around it.
fn bounds(xs: &[f64]) -> (f64, f64) {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !min.is_finite() || max - min < 1e-9 {
        let mid = if min.is_finite() { min } else { 0.0 };
        (mid - 0.5, mid + 0.5)
    } else {
        (min, max)
    }
}

/// The smallest of 1, 2, 5 × 10^k at or above `max` (1 for an empty or zero series).
fn nice_top(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let exp = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * exp)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * exp)
}

/// A short axis label: 65536 → 64Ki, 2.5 → 2.5.
fn label(v: f64) -> String {
    if v >= 1024.0 && (v / 1024.0).fract() == 0.0 {
        format!("{}Ki", v / 1024.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sweep: &str, x: f64, mb: f64, p99_us: u64) -> String {
        format!(
            r#"{{"sweep":"{sweep}","x":{x},"msgs_per_sec":{},"mb_per_sec":{mb},"latency":{{"p50_us":1,"p99_us":{p99_us}}},"errors":0}}"#,
            mb * 1000.0
        )
    }

    #[test]
    fn one_chart_per_sweep_with_a_point_per_measurement() {
        let text = [
            line("partitions", 4.0, 20.0, 9000),
            line("partitions", 1.0, 10.0, 3000),
            String::new(),
            r#"{"mode":"failover"}"#.to_owned(),
            line("producers", 2.0, 5.0, 1000),
        ]
        .join("\n");
        let points = parse(&text).expect("parse");
        assert_eq!(points.len(), 3);
        let charts = charts(&points);
        assert_eq!(
            charts.keys().collect::<Vec<_>>(),
            vec!["partitions", "producers"]
        );
        let svg = &charts["partitions"];
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 2);
        // Sorted by x: the 1-partition point is drawn left of the 4-partition one.
        let at = |text: &str| svg.find(text).expect("point drawn");
        assert!(at("10000 msgs/s") < at("20000 msgs/s"));
    }

    #[test]
    fn a_line_that_is_not_json_is_named() {
        let err = parse("{}\nnot json").expect_err("bad line");
        assert!(err.starts_with("line 2"), "{err}");
    }

    #[test]
    fn axis_tops_and_labels_are_round() {
        assert_eq!(nice_top(0.0), 1.0);
        assert_eq!(nice_top(37.0), 50.0);
        assert_eq!(nice_top(120.0), 200.0);
        assert_eq!(label(65536.0), "64Ki");
        assert_eq!(label(100.0), "100");
        assert_eq!(label(2.5), "2.5");
    }
}
