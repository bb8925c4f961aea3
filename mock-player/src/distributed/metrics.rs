//! Live counters as Prometheus metrics (`--metrics-addr`): a minimal HTTP
//! endpoint answering `GET /metrics` in the text exposition format, so a
//! Grafana board can watch a long distributed run. One series per agent
//! (label `agent`), plus `agent="all"` on the coordinator.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::distributed::bus::Usage;
use crate::report::Sample;

/// One agent's latest figures: its sample, its process usage, lost or not.
type Row = (Sample, Usage, bool);
/// A metric: name, help text, how to read it.
type Gauge<T> = (&'static str, &'static str, fn(&T) -> f64);

/// The latest sample (and process usage) of each agent.
#[derive(Debug, Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<BTreeMap<String, Row>>>,
}

impl Board {
    pub fn set(&self, agent: &str, sample: &Sample, usage: Usage, lost: bool) {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(agent.to_string(), (sample.clone(), usage, lost));
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let rows: Vec<(String, Sample, Usage, bool)> = self
            .inner
            .lock()
            .map(|m| m.iter().map(|(k, (s, u, l))| (k.clone(), s.clone(), *u, *l)).collect())
            .unwrap_or_default();
        let mut o = String::new();
        let gauges: [Gauge<Sample>; 7] = [
            ("mock_player_players_started", "Players started", |s| s.started as f64),
            ("mock_player_players_joining", "Players joining", |s| s.joining as f64),
            ("mock_player_players_streaming", "Players streaming", |s| s.streaming as f64),
            ("mock_player_players_failed", "Players failed", |s| s.failed as f64),
            ("mock_player_players_done", "Players done", |s| s.done as f64),
            ("mock_player_fps", "Video frames per second over all players", |s| s.fps),
            ("mock_player_bitrate_bps", "Media bits per second over all players", |s| s.bitrate_bps),
        ];
        for (name, help, f) in gauges {
            let _ = writeln!(o, "# HELP {name} {help}.\n# TYPE {name} gauge");
            for (agent, s, _, _) in &rows {
                let _ = writeln!(o, "{name}{{agent=\"{}\"}} {}", esc(agent), f(s));
            }
        }
        let usage: [Gauge<Usage>; 2] = [
            ("mock_player_agent_cpu_seconds", "CPU seconds the agent process used in this run", |u| u.cpu_secs),
            ("mock_player_agent_rss_bytes", "Resident memory of the agent process", |u| u.rss_bytes as f64),
        ];
        for (name, help, f) in usage {
            let _ = writeln!(o, "# HELP {name} {help}.\n# TYPE {name} gauge");
            for (agent, _, u, _) in rows.iter().filter(|r| r.0 != "all") {
                let _ = writeln!(o, "{name}{{agent=\"{}\"}} {}", esc(agent), f(u));
            }
        }
        let _ = writeln!(o, "# HELP mock_player_agent_lost 1 if the agent was lost in this run.");
        let _ = writeln!(o, "# TYPE mock_player_agent_lost gauge");
        for (agent, _, _, lost) in rows.iter().filter(|r| r.0 != "all") {
            let _ = writeln!(o, "mock_player_agent_lost{{agent=\"{}\"}} {}", esc(agent), u8::from(*lost));
        }
        o
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Serve `board` on `addr` until `stop`; returns the bound address.
pub async fn serve(addr: SocketAddr, board: Board, stop: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            };
            let board = board.clone();
            tokio::spawn(async move {
                // Read the request head (bounded); only the request line matters.
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
                    ("200 OK", board.render())
                } else {
                    ("404 Not Found", "not found\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_exposition() {
        let board = Board::default();
        board.set(
            "east-1",
            &Sample { started: 5, streaming: 3, fps: 90.0, ..Default::default() },
            Usage::default(),
            false,
        );
        let stop = CancellationToken::new();
        let addr = serve("127.0.0.1:0".parse().expect("addr"), board, stop.clone()).await.expect("binds");
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connects");
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("writes");
        let mut out = String::new();
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .expect("answers in time")
            .expect("reads");
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("mock_player_players_streaming{agent=\"east-1\"} 3"), "{out}");
        assert!(out.contains("# TYPE mock_player_fps gauge"), "{out}");
        stop.cancel();
    }
}
