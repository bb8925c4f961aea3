//! One report from many agents: every player's result goes through the
//! single-run [`LoadReport::build`] (so percentiles are over all players, not
//! averages of agents' percentiles); players an agent never reported count as
//! failed with reason `agent_lost`; timelines are put on the coordinator's
//! time axis and summed; a per-agent table is added.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::distributed::bus::Usage;
use crate::distributed::clock::Offset;
use crate::distributed::plan::Share;
use crate::player::PlayerStats;
use crate::report::{LoadReport, Sample};

/// The failure kind of players whose agent was lost.
pub const AGENT_LOST: &str = "agent_lost";

/// Why and when (seconds after the agreed start, coordinator clock) an agent was given up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lost {
    pub at_secs: f64,
    pub reason: String,
}

/// The agent's own end-of-run message.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    pub elapsed_secs: f64,
    /// When the agent's ramp actually began, agent clock (ms since epoch).
    pub started_at_ms: f64,
    pub timeline: Vec<Sample>,
}

/// Everything the coordinator learnt about one agent in one run.
#[derive(Debug, Clone)]
pub struct AgentResult {
    pub name: String,
    pub capacity: usize,
    pub share: Share,
    pub offset: Offset,
    /// Results received (in any order, possibly incomplete).
    pub players: Vec<PlayerStats>,
    /// Live samples received (the timeline of an agent that never finished).
    pub live: Vec<Sample>,
    pub usage: Usage,
    pub finished: Option<Finished>,
    pub lost: Option<Lost>,
}

impl AgentResult {
    pub fn new(name: &str, capacity: usize, share: Share, offset: Offset) -> AgentResult {
        AgentResult {
            name: name.to_string(),
            capacity,
            share,
            offset,
            players: Vec::new(),
            live: Vec::new(),
            usage: Usage::default(),
            finished: None,
            lost: None,
        }
    }

    /// Seconds this agent's ramp began after the agreed moment (coordinator
    /// clock): how far its local time axis must be shifted.
    pub fn start_skew_secs(&self, start_at_ms: f64) -> f64 {
        self.finished.as_ref().map_or(0.0, |f| (f.started_at_ms - self.offset.offset_ms - start_at_ms) / 1000.0)
    }
}

/// One row of the per-agent table.
#[derive(Debug, Clone, Serialize)]
pub struct AgentSummary {
    pub name: String,
    pub capacity: usize,
    pub players: usize,
    pub joined: usize,
    pub passed: usize,
    pub failed: usize,
    pub cpu_secs: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    /// Agent clock minus coordinator clock.
    pub clock_offset_ms: f64,
    /// The offset is right to within half of this.
    pub clock_round_trip_ms: f64,
    /// When its ramp began relative to the agreed moment.
    pub start_skew_ms: f64,
    pub lost: Option<Lost>,
}

/// A distributed run's report: the single-run report's figures over every
/// player (flattened, same JSON fields) plus the agents.
#[derive(Debug, Clone, Serialize)]
pub struct DistributedReport {
    #[serde(flatten)]
    pub report: LoadReport,
    pub agents: Vec<AgentSummary>,
    /// Bytes into and out of Redis during the run (its `INFO stats`
    /// counters: includes anything else using the same Redis).
    pub redis_bytes: Option<u64>,
}

/// Merge the agents' results. `elapsed_secs` is the coordinator's.
pub fn merge(agents: &[AgentResult], start_at_ms: f64, elapsed_secs: f64, signalling_only: bool) -> DistributedReport {
    let mut all = Vec::new();
    let mut summaries = Vec::new();
    for a in agents {
        let skew = a.start_skew_secs(start_at_ms);
        let range = a.share.first_index..a.share.first_index + a.share.players;
        let mut seen = BTreeSet::new();
        let mut mine: Vec<PlayerStats> = Vec::with_capacity(a.share.players);
        for p in &a.players {
            // Only this agent's indices, each once: a confused agent cannot inflate the run.
            if range.contains(&p.index) && seen.insert(p.index) {
                let mut p = p.clone();
                p.started_at_secs += skew;
                mine.push(p);
            }
        }
        for index in range.clone().filter(|i| !seen.contains(i)) {
            let error = match &a.lost {
                Some(l) => format!("agent lost: {} at {:.1} s ({})", a.name, l.at_secs, l.reason),
                None => format!("agent lost: {} finished without this player's result", a.name),
            };
            mine.push(PlayerStats {
                index,
                passed: false,
                error_kind: Some(AGENT_LOST.to_string()),
                error: Some(error),
                ..Default::default()
            });
        }
        summaries.push(AgentSummary {
            name: a.name.clone(),
            capacity: a.capacity,
            players: mine.len(),
            joined: mine.iter().filter(|p| p.joined).count(),
            passed: mine.iter().filter(|p| p.passed).count(),
            failed: mine.iter().filter(|p| !p.passed).count(),
            cpu_secs: a.usage.cpu_secs,
            rss_bytes: a.usage.rss_bytes,
            peak_rss_bytes: a.usage.peak_rss_bytes,
            clock_offset_ms: a.offset.offset_ms,
            clock_round_trip_ms: a.offset.round_trip_ms,
            start_skew_ms: skew * 1000.0,
            lost: a.lost.clone(),
        });
        all.extend(mine);
    }
    let timeline = merge_timelines(agents, start_at_ms);
    DistributedReport {
        report: LoadReport::build(all, timeline, elapsed_secs, signalling_only),
        agents: summaries,
        redis_bytes: None,
    }
}

/// Sum the agents' samples per whole second of the coordinator's time axis.
/// An agent without a sample in some second counts with its previous one
/// (rates zero once it has no more samples); once lost, all its players
/// count as failed.
pub fn merge_timelines(agents: &[AgentResult], start_at_ms: f64) -> Vec<Sample> {
    let mut per_agent: Vec<BTreeMap<i64, Sample>> = Vec::new();
    let mut buckets = BTreeSet::new();
    for a in agents {
        let skew = a.start_skew_secs(start_at_ms);
        let src = match &a.finished {
            Some(f) if !f.timeline.is_empty() => &f.timeline,
            _ => &a.live,
        };
        let mut m = BTreeMap::new();
        for s in src {
            let t = s.t_secs + skew;
            let b = t.round() as i64;
            buckets.insert(b);
            m.insert(b, Sample { t_secs: t, ..s.clone() });
        }
        if let Some(l) = &a.lost {
            buckets.insert(l.at_secs.ceil() as i64);
        }
        per_agent.push(m);
    }
    let mut out = Vec::new();
    for &b in &buckets {
        let mut sum = Sample { t_secs: b as f64, ..Default::default() };
        for (a, m) in agents.iter().zip(&per_agent) {
            if let Some(l) = &a.lost {
                if b as f64 >= l.at_secs {
                    sum.started += a.share.players;
                    sum.failed += a.share.players;
                    continue;
                }
            }
            let Some((&at, s)) = m.range(..=b).next_back() else { continue };
            sum.started += s.started;
            sum.joining += s.joining;
            sum.streaming += s.streaming;
            sum.failed += s.failed;
            sum.done += s.done;
            if at == b {
                sum.fps += s.fps;
                sum.bitrate_bps += s.bitrate_bps;
            }
        }
        out.push(sum);
    }
    out
}

/// The per-agent table as text (after the single-run summary).
pub fn agents_text(agents: &[AgentSummary]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<16} {:>7} {:>7} {:>7} {:>8} {:>9} {:>10} {:>9}  lost",
        "agent", "players", "passed", "failed", "cpu s", "rss MB", "offset ms", "skew ms"
    );
    for a in agents {
        let _ = writeln!(
            o,
            "{:<16} {:>7} {:>7} {:>7} {:>8.1} {:>9.1} {:>10.1} {:>9.1}  {}",
            a.name,
            a.players,
            a.passed,
            a.failed,
            a.cpu_secs,
            a.peak_rss_bytes as f64 / 1e6,
            a.clock_offset_ms,
            a.start_skew_ms,
            a.lost.as_ref().map_or("-".to_string(), |l| format!("at {:.1} s: {}", l.at_secs, l.reason))
        );
    }
    o
}

/// The single-run HTML page with the per-agent table added.
pub fn html(r: &DistributedReport) -> String {
    let page = crate::html::render(&r.report);
    let mut t = String::from(
        "<h2>Agents</h2>\n<table><tr><th>agent</th><th>capacity</th><th>players</th><th>joined</th><th>passed</th>\
         <th>failed</th><th>CPU s</th><th>peak RSS MB</th><th>clock offset ms</th><th>± ms</th><th>start skew ms</th><th>lost</th></tr>\n",
    );
    for a in &r.agents {
        let _ = writeln!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td></tr>",
            esc(&a.name),
            a.capacity,
            a.players,
            a.joined,
            a.passed,
            a.failed,
            a.cpu_secs,
            a.peak_rss_bytes as f64 / 1e6,
            a.clock_offset_ms,
            a.clock_round_trip_ms / 2.0,
            a.start_skew_ms,
            a.lost.as_ref().map_or("-".to_string(), |l| esc(&format!("at {:.1} s: {}", l.at_secs, l.reason)))
        );
    }
    t.push_str("</table>\n");
    match page.rfind("</body>") {
        Some(i) => format!("{}{t}{}", &page[..i], &page[i..]),
        None => page + &t,
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Percentiles;

    fn player(index: usize, joined_ms: f64) -> PlayerStats {
        let mut p = PlayerStats { index, joined: true, passed: true, ..Default::default() };
        p.join.joined_ms = Some(joined_ms);
        p
    }

    fn agent(name: &str, first: usize, n: usize) -> AgentResult {
        AgentResult::new(
            name,
            100,
            Share { first_index: first, players: n, ramp: 1.0, max_joining: 1 },
            Offset::default(),
        )
    }

    #[test]
    fn percentiles_are_over_all_players_not_averaged() {
        // Agent a: 9 fast players; agent b: 1 slow one. Averaging the agents'
        // p50s would give (1 + 100) / 2; over all players p50 is 1.
        let mut a = agent("a", 0, 9);
        a.players = (0..9).map(|i| player(i, 1.0)).collect();
        let mut b = agent("b", 9, 1);
        b.players = vec![player(9, 100.0)];
        let r = merge(&[a.clone(), b.clone()], 0.0, 5.0, true);
        let joined = &r.report.phases["6 joined"];
        assert_eq!(joined, &Percentiles::of([vec![1.0; 9], vec![100.0]].concat()));
        assert_eq!((joined.p50, joined.max), (1.0, 100.0));
        assert_eq!((r.report.players, r.report.passed, r.report.failed), (10, 10, 0));
        assert!(r.report.all_passed());
        assert_eq!(r.agents.iter().map(|a| a.players).collect::<Vec<_>>(), vec![9, 1]);
    }

    #[test]
    fn a_lost_agents_players_fail_as_agent_lost() {
        let mut a = agent("east-1", 0, 3);
        a.players = (0..3).map(|i| player(i, 5.0)).collect();
        let mut b = agent("east-2", 3, 4);
        b.players = vec![player(3, 5.0)]; // one result arrived before it died
        b.lost = Some(Lost { at_secs: 7.5, reason: "no message for 5 s".into() });
        let r = merge(&[a, b], 0.0, 10.0, true);
        assert_eq!((r.report.players, r.report.passed, r.report.failed), (7, 4, 3));
        assert_eq!(r.report.failures.len(), 1);
        assert_eq!(r.report.failures[0].kind, AGENT_LOST);
        assert_eq!(r.report.failures[0].count, 3);
        assert!(r.report.failures[0].example.contains("east-2 at 7.5 s"), "{:?}", r.report.failures);
        assert!(!r.report.all_passed());
        let lost: Vec<_> = r.agents.iter().filter(|a| a.lost.is_some()).map(|a| a.name.as_str()).collect();
        assert_eq!(lost, vec!["east-2"]);
        assert_eq!(r.agents[1].failed, 3);
        assert!(agents_text(&r.agents).contains("at 7.5 s: no message for 5 s"));
    }

    #[test]
    fn foreign_and_duplicate_results_are_ignored() {
        let mut a = agent("a", 0, 2);
        a.players = vec![player(0, 1.0), player(0, 2.0), player(1, 1.0), player(5, 1.0)];
        a.finished = Some(Finished::default());
        let r = merge(&[a], 0.0, 1.0, true);
        assert_eq!(r.report.players, 2);
        assert_eq!(r.report.player_stats.iter().map(|p| p.index).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn time_axis_is_shifted_by_each_agents_start_skew() {
        // The agent's clock is 1000 ms ahead; it began 200 ms after the agreed
        // moment (coordinator time 10_000).
        let mut a = agent("a", 0, 1);
        a.offset = Offset { offset_ms: 1000.0, round_trip_ms: 1.0 };
        let mut p = player(0, 1.0);
        p.started_at_secs = 0.5;
        a.players = vec![p];
        a.finished = Some(Finished {
            elapsed_secs: 3.0,
            started_at_ms: 11_200.0,
            timeline: vec![Sample { t_secs: 1.0, started: 1, streaming: 1, fps: 30.0, ..Default::default() }],
        });
        assert!((a.start_skew_secs(10_000.0) - 0.2).abs() < 1e-9);
        let r = merge(&[a], 10_000.0, 3.0, true);
        assert!((r.report.player_stats[0].started_at_secs - 0.7).abs() < 1e-9);
        assert!((r.agents[0].start_skew_ms - 200.0).abs() < 1e-6);
        assert_eq!(r.report.timeline.len(), 1);
        assert_eq!(r.report.timeline[0].t_secs, 1.0);
    }

    #[test]
    fn timelines_sum_per_second_and_lost_agents_count_failed() {
        let s = |t: f64, streaming: usize, fps: f64| Sample {
            t_secs: t,
            started: streaming,
            streaming,
            fps,
            ..Default::default()
        };
        let mut a = agent("a", 0, 2);
        a.finished =
            Some(Finished { timeline: vec![s(1.0, 1, 30.0), s(2.0, 2, 60.0), s(3.0, 2, 60.0)], ..Default::default() });
        let mut b = agent("b", 2, 2);
        b.live = vec![s(1.02, 2, 60.0)];
        b.lost = Some(Lost { at_secs: 2.5, reason: "gone".into() });
        let t = merge_timelines(&[a, b], 0.0);
        let view: Vec<(f64, usize, usize, f64)> = t.iter().map(|s| (s.t_secs, s.streaming, s.failed, s.fps)).collect();
        assert_eq!(view, vec![(1.0, 3, 0, 90.0), (2.0, 4, 0, 60.0), (3.0, 2, 2, 60.0)]);
    }

    #[test]
    fn html_has_the_agent_table() {
        let mut a = agent("east-1", 0, 1);
        a.players = vec![player(0, 1.0)];
        let page = html(&merge(&[a], 0.0, 1.0, true));
        assert!(page.contains("<h2>Agents</h2>") && page.contains("east-1"));
        assert!(page.trim_end().ends_with("</html>"));
    }
}
