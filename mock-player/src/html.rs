//! A self-contained HTML report: tables (with the frame latency, freeze and
//! repair figures per network profile) plus inline SVG charts (join-time
//! histogram, players streaming, aggregate bitrate and freezes over time).
//! No scripts, no external assets.

use std::fmt::Write as _;

use crate::report::LoadReport;

const W: f64 = 640.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Bars: (label, value).
fn bar_chart(title: &str, bars: &[(String, f64)], y_label: &str) -> String {
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">",
        esc(title)
    );
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1.0);
    let n = bars.len().max(1) as f64;
    let bw = (W - 2.0 * PAD) / n;
    axes(&mut s, max, y_label);
    for (i, (label, v)) in bars.iter().enumerate() {
        let h = (H - 2.0 * PAD) * v / max;
        let x = PAD + i as f64 * bw;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4a7bd0\"><title>{}: {v}</title></rect>",
            H - PAD - h,
            (bw - 1.0).max(1.0),
            esc(label)
        );
        if bars.len() <= 12 || i % (bars.len() / 8).max(1) == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                H - PAD + 12.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg></figure>\n");
    s
}

fn axes(s: &mut String, max: f64, y_label: &str) {
    let _ = write!(
        s,
        "<line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#333\"/><line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/>\
         <text x=\"4\" y=\"{y:.1}\" font-size=\"10\">{m}</text><text x=\"4\" y=\"{b}\" font-size=\"10\">0</text>\
         <text x=\"4\" y=\"14\" font-size=\"10\">{l}</text>",
        b = H - PAD,
        r = W - PAD,
        y = PAD + 4.0,
        m = fmt_num(max),
        l = esc(y_label)
    );
}

/// A line through (x, y) points.
fn line_chart(title: &str, pts: &[(f64, f64)], y_label: &str) -> String {
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">",
        esc(title)
    );
    let max_y = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    let max_x = pts.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    axes(&mut s, max_y, y_label);
    let path: Vec<String> = pts
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", PAD + (W - 2.0 * PAD) * x / max_x, H - PAD - (H - 2.0 * PAD) * y / max_y))
        .collect();
    let _ = write!(
        s,
        "<polyline fill=\"none\" stroke=\"#d04a4a\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{:.0} s</text>",
        path.join(" "),
        W - PAD,
        H - PAD + 14.0,
        max_x
    );
    s.push_str("</svg></figure>\n");
    s
}

fn fmt_num(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Join-time histogram buckets (ms).
fn histogram(values: &[f64], buckets: usize) -> Vec<(String, f64)> {
    if values.is_empty() {
        return Vec::new();
    }
    let max = values.iter().copied().fold(0.0, f64::max).max(1.0);
    let width = (max / buckets as f64).max(1.0);
    let mut counts = vec![0.0; buckets];
    for v in values {
        let i = ((v / width) as usize).min(buckets - 1);
        counts[i] += 1.0;
    }
    counts.into_iter().enumerate().map(|(i, c)| (format!("{:.0}", (i as f64 + 0.5) * width), c)).collect()
}

/// One row of a percentile table: label, n, p50, p90, p99, max (× `k`).
fn table_row(s: &mut String, label: &str, p: &crate::report::Percentiles, k: f64) {
    let _ = write!(
        s,
        "<tr><th>{}</th><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
        esc(label),
        p.n,
        p.p50 * k,
        p.p90 * k,
        p.p99 * k,
        p.max * k
    );
}

/// The latency, freeze and repair rows of one set of players.
fn figure_rows(f: &crate::report::ProfileFigures) -> Vec<(String, &crate::report::Percentiles, f64)> {
    vec![
        ("frame latency p50 per player (ms)".into(), &f.latency_p50_ms, 1.0),
        ("frame latency p99 per player (ms)".into(), &f.latency_p99_ms, 1.0),
        ("frame latency max per player (ms)".into(), &f.latency_max_ms, 1.0),
        ("freezes per player".into(), &f.freezes, 1.0),
        ("frozen per player (s)".into(), &f.frozen_secs, 1.0),
        ("frames complete (%)".into(), &f.frames_complete, 100.0),
        ("NACKs sent per player".into(), &f.nacks_sent, 1.0),
        ("PLIs sent per player".into(), &f.plis_sent, 1.0),
        ("retransmitted packets per player".into(), &f.retransmitted, 1.0),
        ("keyframes per player".into(), &f.keyframes, 1.0),
    ]
}

/// The whole page.
pub fn render(r: &LoadReport) -> String {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mock-player report</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}figure{margin:1em 0}</style>\
         </head><body><h1>mock-player report</h1>\n",
    );
    let _ = write!(
        s,
        "<p>players {} · joined {} · passed {} · failed {} · {:.1} s{}</p>\n<table><tr><th></th><th>n</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>",
        r.players,
        r.joined,
        r.passed,
        r.failed,
        r.elapsed_secs,
        if r.signalling_only { " · signalling only" } else { "" }
    );
    let mut rows: Vec<(String, &crate::report::Percentiles, f64)> = r
        .phases
        .iter()
        .map(|(k, p)| (format!("{} (ms)", k.split_once(' ').map_or(k.as_str(), |x| x.1)), p, 1.0))
        .collect();
    if !r.signalling_only {
        rows.push(("fps".into(), &r.fps, 1.0));
        rows.push(("bitrate (kbit/s)".into(), &r.bitrate_bps, 0.001));
        rows.push(("loss (%)".into(), &r.loss, 100.0));
        rows.push(("data-channel RTT (ms)".into(), &r.dc_rtt_ms, 1.0));
        rows.push(("LatencyTest round trip (ms)".into(), &r.latency_test_ms, 1.0));
        rows.extend(figure_rows(&r.all));
    }
    for (name, p, k) in rows {
        table_row(&mut s, &name, p, k);
    }
    s.push_str("</table>\n");
    if !r.failures.is_empty() {
        s.push_str("<h2>Failures</h2><table><tr><th>reason</th><th>count</th><th>example</th></tr>");
        for f in &r.failures {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                esc(&f.kind),
                f.count,
                esc(&f.example)
            );
        }
        s.push_str("</table>\n");
    }
    if r.profiles.len() > 1 || r.profiles.keys().any(|k| k != "clean") {
        for (name, f) in &r.profiles {
            let _ = write!(
                s,
                "<h2>Profile {}</h2><p>{} players · {} passed · NACKs sent {} · retransmitted packets {} · frames complete {} · incomplete {}</p>\
                 <table><tr><th></th><th>n</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>",
                esc(name),
                f.players,
                f.passed,
                f.repair.nacks_sent,
                f.retransmitted.mean * f.retransmitted.n as f64,
                f.frames_complete_total,
                f.frames_incomplete_total
            );
            for (label, p, k) in figure_rows(f) {
                table_row(&mut s, &label, p, k);
            }
            s.push_str("</table>\n");
        }
    }
    if !r.clock_offsets.is_empty() {
        let ways: Vec<String> = r.clock_offsets.iter().map(|(k, n)| format!("{} × {n}", esc(k))).collect();
        let _ = writeln!(s, "<p>Frame latency clock: {}</p>", ways.join(", "));
    }
    let joins: Vec<f64> = r.player_stats.iter().filter_map(|p| p.join.joined_ms).collect();
    s.push_str(&bar_chart("Join time (ms to streaming)", &histogram(&joins, 20), "players"));
    let streaming: Vec<(f64, f64)> = r.timeline.iter().map(|t| (t.t_secs, t.streaming as f64)).collect();
    s.push_str(&line_chart("Players streaming over time", &streaming, "players"));
    if !r.signalling_only {
        let bitrate: Vec<(f64, f64)> = r.timeline.iter().map(|t| (t.t_secs, t.bitrate_bps)).collect();
        s.push_str(&line_chart("Aggregate bitrate over time", &bitrate, "bit/s"));
        let freezes: Vec<(f64, f64)> = r.timeline.iter().map(|t| (t.t_secs, t.freezes as f64)).collect();
        s.push_str(&line_chart("Freezes so far, all players (WebRTC's definition)", &freezes, "freezes"));
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Sample;

    #[test]
    fn renders_self_contained() {
        let r = LoadReport {
            timeline: vec![
                Sample { t_secs: 1.0, streaming: 1, bitrate_bps: 1e6, ..Default::default() },
                Sample { t_secs: 2.0, streaming: 2, bitrate_bps: 2e6, freezes: 3, ..Default::default() },
            ],
            ..Default::default()
        };
        let html = render(&r);
        assert!(html.contains("<svg"));
        assert!(html.contains("Freezes so far") && html.contains("frame latency p50 per player"));
        assert!(
            !html.contains("http://")
                || html.matches("http://").count() == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        assert_eq!(histogram(&[1.0, 2.0, 100.0], 4).len(), 4);
    }
}
