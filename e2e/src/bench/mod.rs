//! Benchmarks of signalling capacity and media load (`bench` binary, see
//! `e2e/bench/README.md`). Each bench measures one or more runs and reports
//! the median of every figure, with the machine's core count.

pub mod children;
pub mod churn;
pub mod client;
pub mod idle;
pub mod joins;
pub mod latency;
pub mod media;
pub mod process;
pub mod soak;
pub mod target;
pub mod util;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// One figure: its median over the runs, each run's value, and the target.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub unit: String,
    pub median: f64,
    pub runs: Vec<f64>,
    /// e.g. "<= 8" (empty: no target).
    pub target: String,
    /// "met", "missed" or "" (no target).
    pub status: String,
}

/// What a bench reports.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub bench: String,
    pub server: String,
    pub cores: usize,
    pub runs: usize,
    pub smoke: bool,
    pub figures: Vec<Figure>,
    /// Per-run raw details.
    pub details: Vec<Value>,
    pub notes: Vec<String>,
}

/// Comparison of a measured value with a target.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    None,
    AtMost(f64),
    AtLeast(f64),
}

impl BenchReport {
    pub fn new(bench: &str, server: &str, smoke: bool) -> BenchReport {
        BenchReport {
            bench: bench.into(),
            server: server.into(),
            cores: util::cores(),
            runs: 0,
            smoke,
            figures: Vec::new(),
            details: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Add a figure from per-run values (the median is taken here).
    pub fn figure(&mut self, name: &str, unit: &str, runs: Vec<f64>, goal: Goal) {
        let median = util::median(&runs);
        let (target, status) = match goal {
            Goal::None => (String::new(), String::new()),
            Goal::AtMost(t) => (format!("<= {}", short(t)), status(median.is_finite() && median <= t)),
            Goal::AtLeast(t) => (format!(">= {}", short(t)), status(median.is_finite() && median >= t)),
        };
        self.figures.push(Figure { name: name.into(), unit: unit.into(), median, runs, target, status });
    }

    /// Collect per-run named values into figures, in first-seen order.
    pub fn figures_from_runs(&mut self, runs: &[Vec<(String, String, f64, Goal)>]) {
        let mut order: Vec<String> = Vec::new();
        let mut by: BTreeMap<String, (String, Goal, Vec<f64>)> = BTreeMap::new();
        for run in runs {
            for (name, unit, v, goal) in run {
                if !by.contains_key(name) {
                    order.push(name.clone());
                }
                by.entry(name.clone()).or_insert_with(|| (unit.clone(), *goal, Vec::new())).2.push(*v);
            }
        }
        for name in order {
            if let Some((unit, goal, vals)) = by.remove(&name) {
                self.figure(&name, &unit, vals, goal);
            }
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n== bench {} — server: {} — {} cores — {} run(s){} ==",
            self.bench,
            self.server,
            self.cores,
            self.runs,
            if self.smoke { " (smoke)" } else { "" }
        );
        let w = self.figures.iter().map(|f| f.name.len()).max().unwrap_or(10).max(10);
        let _ =
            writeln!(s, "{:<w$}  {:>12}  {:<12}  {:<30}  {:<10}  status", "figure", "median", "unit", "runs", "target");
        for f in &self.figures {
            let runs: Vec<String> = f.runs.iter().map(|v| fmt_num(*v)).collect();
            let _ = writeln!(
                s,
                "{:<w$}  {:>12}  {:<12}  {:<30}  {:<10}  {}",
                f.name,
                fmt_num(f.median),
                f.unit,
                runs.join(" "),
                f.target,
                f.status
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }

    /// Every figure is a finite number (what the smoke test asserts).
    pub fn has_numbers(&self) -> bool {
        !self.figures.is_empty() && self.figures.iter().all(|f| f.median.is_finite())
    }
}

fn status(ok: bool) -> String {
    if ok { "met" } else { "missed" }.to_string()
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Shorthand for a per-run figure.
pub fn fig(name: &str, unit: &str, v: f64, goal: Goal) -> (String, String, f64, Goal) {
    (name.to_string(), unit.to_string(), v, goal)
}

/// Side by side: each figure of `ours` with the same figure of `other` and the ratio ours / other
/// (both measured in the same invocation).
pub fn compare_text(ours: &BenchReport, other: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n== comparison ({}): ours = {} ; other = {} ==", ours.bench, ours.server, other.server);
    let w = ours.figures.iter().map(|f| f.name.len()).max().unwrap_or(10).max(10);
    let _ = writeln!(s, "{:<w$}  {:>12}  {:>12}  {:>12}  unit", "figure", "ours", "other", "ours/other");
    for f in &ours.figures {
        let Some(o) = other.figures.iter().find(|g| g.name == f.name) else { continue };
        let ratio = if o.median != 0.0 { f.median / o.median } else { f64::NAN };
        let _ = writeln!(
            s,
            "{:<w$}  {:>12}  {:>12}  {:>12}  {}",
            f.name,
            fmt_num(f.median),
            fmt_num(o.median),
            fmt_num(ratio),
            f.unit
        );
    }
    s
}

/// A target for the table: at most two decimals, no trailing zeros (8 KB
/// is 7.8125 KiB, shown as 7.81; the comparison uses the exact value).
fn short(t: f64) -> String {
    let text = format!("{t:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
