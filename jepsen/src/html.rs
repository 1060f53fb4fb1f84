//! The run report as one HTML page with SVG plots: send latency and acknowledged sends per
//! second over time, fault windows shaded by kind, then the text report.
//! No scripts and no external files: the page opens anywhere.

use crate::history::{Function, History, OpType};
use crate::run::{Nemesis, Report};
use std::collections::BTreeMap;
use std::fmt::Write as _;

const W: f64 = 900.0;
const H: f64 = 220.0;
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 30.0;

/// The page.
pub fn page(report: &Report, history: &History) -> String {
    let (latency, unknown) = send_points(history);
    let end_s = history
        .ops
        .last()
        .map_or(report.time_s, |op| op.time as f64 / 1e9)
        .max(1.0);
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    for (t, _) in &latency {
        *per_second.entry(*t as u64).or_default() += 1;
    }
    let max_latency = latency.iter().map(|p| p.1).fold(1.0, f64::max);
    let max_rate = per_second.values().copied().max().unwrap_or(1) as f64;

    let mut svg_latency = frame(report, end_s, "send latency (ms, log scale)");
    let y_log = |ms: f64| {
        let top = max_latency.max(10.0).log10();
        let frac = (ms.max(0.1).log10() + 1.0) / (top + 1.0);
        H - BOTTOM - frac * (H - BOTTOM - 10.0)
    };
    for (t, ms) in &latency {
        let _ = write!(
            svg_latency,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.3" fill="#2456a6" fill-opacity="0.5"/>"##,
            x(*t, end_s),
            y_log(*ms)
        );
    }
    for t in &unknown {
        let _ = write!(
            svg_latency,
            r##"<path d="M{:.1} 12 l3 6 l-6 0 z" fill="#c0392b"><title>unknown outcome</title></path>"##,
            x(*t, end_s)
        );
    }
    for ms in [1.0, 10.0, 100.0, 1000.0, 10_000.0] {
        if ms <= max_latency * 2.0 {
            let _ = write!(
                svg_latency,
                r##"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{ms}</text>"##,
                LEFT - 4.0,
                y_log(ms) + 3.0
            );
        }
    }
    svg_latency.push_str("</svg>");

    let mut svg_rate = frame(report, end_s, "acknowledged sends per second");
    for (second, n) in &per_second {
        let h = *n as f64 / max_rate * (H - BOTTOM - 10.0);
        let _ = write!(
            svg_rate,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#2456a6"/>"##,
            x(*second as f64, end_s),
            H - BOTTOM - h,
            (x(1.0, end_s) - LEFT).max(1.0) * 0.9,
            h
        );
    }
    let _ = write!(
        svg_rate,
        r##"<text x="{}" y="14" font-size="10" text-anchor="end">{max_rate}</text></svg>"##,
        LEFT - 4.0
    );

    let verdict = if report.clean() {
        r#"<p style="color:#1e7b34"><b>No anomalies.</b></p>"#.to_owned()
    } else {
        format!(
            r#"<p style="color:#c0392b"><b>{} anomaly kinds found.</b></p>"#,
            report.anomalies.len()
        )
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>paxlog-jepsen seed {}</title></head>\
         <body style=\"font-family:sans-serif\"><h1>paxlog-jepsen run, seed {}</h1>{verdict}\
         <p>Shaded: kill (red), pause (amber), partition (blue), netem (purple).</p>{svg_latency}{svg_rate}<pre>{}</pre></body></html>\n",
        report.seed,
        report.seed,
        escape(&report.to_text())
    )
}

/// (ack time s, latency ms) of acknowledged sends, and invoke times of unknown ones.
fn send_points(history: &History) -> (Vec<(f64, f64)>, Vec<f64>) {
    let mut invoked: BTreeMap<(u64, String), u64> = BTreeMap::new();
    let (mut ok, mut unknown) = (Vec::new(), Vec::new());
    for op in &history.ops {
        if op.f != Function::Send {
            continue;
        }
        let key = (op.process, op.value.value.clone().unwrap_or_default());
        match op.kind {
            OpType::Invoke => {
                invoked.insert(key, op.time);
            }
            OpType::Ok => {
                if let Some(t0) = invoked.get(&key) {
                    ok.push((op.time as f64 / 1e9, (op.time - t0) as f64 / 1e6));
                }
            }
            OpType::Info => unknown.push(op.time as f64 / 1e9),
            OpType::Fail => {}
        }
    }
    (ok, unknown)
}

fn x(t: f64, end_s: f64) -> f64 {
    LEFT + t / end_s * (W - LEFT - 10.0)
}

/// An SVG with axes, a title, time ticks and the fault windows shaded.
fn frame(report: &Report, end_s: f64, title: &str) -> String {
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" style="display:block;margin:8px 0"><text x="{LEFT}" y="10" font-size="11">{title}</text>"##
    );
    for f in &report.faults {
        let color = match f.kind {
            Nemesis::Kill => "#e74c3c",
            Nemesis::Pause => "#f39c12",
            Nemesis::Partition => "#2980b9",
            Nemesis::Netem => "#8e44ad",
            Nemesis::Disk => "#16a085",
            Nemesis::Crash => "#7f8c8d",
        };
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="14" width="{:.1}" height="{:.1}" fill="{color}" fill-opacity="0.15"><title>{:?} {:?}</title></rect>"##,
            x(f.start_s, end_s),
            (x(f.end_s, end_s) - x(f.start_s, end_s)).max(1.0),
            H - BOTTOM - 14.0,
            f.kind,
            f.nodes
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#333"/><line x1="{LEFT}" y1="14" x2="{LEFT}" y2="{0}" stroke="#333"/>"##,
        H - BOTTOM,
        W - 10.0
    );
    let step = (end_s / 10.0).ceil().max(1.0);
    let mut t = 0.0;
    while t <= end_s {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{t:.0}s</text>"##,
            x(t, end_s),
            H - BOTTOM + 14.0
        );
        t += step;
    }
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
