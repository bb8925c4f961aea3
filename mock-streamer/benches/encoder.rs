//! Benchmarks for the README: encoder cost and the CPU cost per player.
//!
//! `cargo bench -p mock-streamer --bench encoder` (add `-- --quick` for one
//! short run per point). Two measurements:
//!
//! 1. In process: ms per frame to render and encode the 1280x720 test
//!    pattern with OpenH264 (median over frames).
//! 2. The `mock-streamer` binary as a child process at 1280x720, 30 fps,
//!    with 0, 1, 10 and 50 webrtc-rs players (in this process, behind a fake
//!    signalling server): the child's CPU (utime + stime from /proc) over a
//!    measurement window, as % of one core. Median over 3 runs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mock_streamer::encoder::H264Encoder;
use mock_streamer::pattern::TestPattern;
use testkit::procfs;
use testkit::stats::median;
use tokio::net::TcpListener;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
const BITRATE: u32 = 2_000_000;

fn encoder_ms_per_frame(frames: u64) -> (f64, f64) {
    let mut pattern = TestPattern::new(WIDTH as usize, HEIGHT as usize);
    let mut encoder = H264Encoder::new(BITRATE, FPS).expect("encoder");
    let mut render = Vec::new();
    let mut encode = Vec::new();
    for n in 0..frames {
        let t0 = Instant::now();
        let frame = pattern.render(n).clone();
        let t1 = Instant::now();
        encoder.encode(&frame, n == 0).expect("encode");
        let t2 = Instant::now();
        if n >= 10 {
            render.push((t1 - t0).as_secs_f64() * 1000.0);
            encode.push((t2 - t1).as_secs_f64() * 1000.0);
        }
    }
    (median(&render), median(&encode))
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    procfs::cpu_secs(pid).expect("stat")
}

fn rss_mb(pid: u32) -> f64 {
    procfs::rss_kib(pid).map_or(0.0, |kib| kib as f64 / 1024.0)
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn streamer_cpu(players: usize, window: Duration) -> (f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let child = Command::new(env!("CARGO_BIN_EXE_mock-streamer"))
        .args(["--url", &url, "--width", &WIDTH.to_string(), "--height", &HEIGHT.to_string()])
        .args(["--fps", &FPS.to_string(), "--bitrate", &BITRATE.to_string()])
        .args(["--stats-interval", "0", "--ping-interval", "0"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mock-streamer");
    let child = KillOnDrop(child);
    let specs = (0..players).map(|i| (format!("Player{i}"), false)).collect();
    let mut server = common::serve(listener, "DefaultStreamer", specs).await;
    for p in server.players.iter_mut() {
        p.wait_connected().await;
        p.next_frame().await;
    }
    // Let the connections settle, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = child.0.id();
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let cpu = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    let rss = rss_mb(pid);
    for p in &server.players {
        let _ = p.pc.close().await;
    }
    server.relay.abort();
    drop(child);
    (cpu, rss)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (runs, frames, window) =
        if quick { (1, 60, Duration::from_secs(3)) } else { (3, 300, Duration::from_secs(10)) };

    let mut render = Vec::new();
    let mut encode = Vec::new();
    for _ in 0..runs {
        let (r, e) = encoder_ms_per_frame(frames);
        render.push(r);
        encode.push(e);
    }
    let (r, e) = (median(&render), median(&encode));
    println!("encoder {WIDTH}x{HEIGHT} @ {BITRATE} bps: render {r:.2} ms/frame, encode {e:.2} ms/frame (median of {runs} runs x {frames} frames)");
    println!("  => at {FPS} fps: {:.1}% of one core for render + encode", (r + e) * f64::from(FPS) / 10.0);

    println!("players | streamer CPU % of one core (median of {runs}) | runs | RSS MB");
    let mut base = None;
    for players in [0usize, 1, 10, 50] {
        let mut cpus = Vec::new();
        let mut rss = 0.0;
        for _ in 0..runs {
            let (c, m) = streamer_cpu(players, window).await;
            cpus.push(c);
            rss = m;
        }
        let med = median(&cpus);
        let runs_text: Vec<String> = cpus.iter().map(|c| format!("{c:.1}")).collect();
        println!("{players:>7} | {med:>6.1} | {} | {rss:.0}", runs_text.join(", "));
        if players == 1 {
            base = Some(med);
        } else if let Some(b) = base {
            println!("        per extra player over 1: {:.2}% of a core", (med - b) / (players as f64 - 1.0));
        }
    }
}
