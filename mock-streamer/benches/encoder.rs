//! Benchmarks for the README: encoder cost and the CPU cost per player.
//!
//! `cargo bench -p mock-streamer --bench encoder` (add `-- --quick` for one
//! short run per point). Two measurements:
//!
//! 1. In process, for every codec (H.264 with OpenH264, VP8 and VP9 with
//!    libvpx, AV1 with SVT-AV1): the 1280x720 test pattern encoded at 30 fps,
//!    paced as the streamer paces it: ms per `encode` call (median over
//!    frames), and the process's CPU (utime + stime, every thread: SVT-AV1
//!    encodes on threads of its own) per frame and as % of one core.
//! 2. The `mock-streamer` binary as a child process at 1280x720, 30 fps,
//!    with 0, 1, 10 and 50 webrtc-rs players (in this process, behind a fake
//!    signalling server): the child's CPU (utime + stime from /proc) over a
//!    measurement window, as % of one core. Median over 3 runs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mock_streamer::encoder::VideoEncoder;
use mock_streamer::pattern::TestPattern;
use proto::rtp_payload::Codec;
use testkit::procfs;
use testkit::stats::median;
use tokio::net::TcpListener;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
const BITRATE: u32 = 2_000_000;

/// One paced run of `frames` frames of `codec`: (ms per encode call,
/// median; CPU ms per frame; CPU % of one core at [`FPS`]).
fn encoder_cost(codec: Codec, frames: u64) -> (f64, f64, f64) {
    let mut pattern = TestPattern::new(WIDTH as usize, HEIGHT as usize);
    let mut encoder = VideoEncoder::new(codec, WIDTH, HEIGHT, BITRATE, FPS).expect("encoder");
    let pid = std::process::id();
    let period = Duration::from_secs_f64(1.0 / f64::from(FPS));
    let mut calls = Vec::new();
    // Warm-up frames: the first keyframe and the rate controller's start.
    for n in 0..10 {
        encoder.encode(pattern.render(n), n == 0).expect("encode");
        std::thread::sleep(period);
    }
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    let mut next = Instant::now();
    for n in 10..10 + frames {
        let frame = pattern.render(n).clone();
        let t = Instant::now();
        encoder.encode(&frame, false).expect("encode");
        calls.push(t.elapsed().as_secs_f64() * 1000.0);
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cpu = cpu_seconds(pid) - c0;
    let wall = t0.elapsed().as_secs_f64();
    (median(&calls), cpu * 1000.0 / frames as f64, cpu / wall * 100.0)
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

    println!("codec | ms per encode call (median) | CPU ms per frame (render + encode, every thread) | CPU % of one core at {FPS} fps | runs");
    for codec in [Codec::H264, Codec::Vp8, Codec::Vp9, Codec::Av1] {
        let results: Vec<(f64, f64, f64)> = (0..runs).map(|_| encoder_cost(codec, frames)).collect();
        let column = |f: fn(&(f64, f64, f64)) -> f64| median(&results.iter().map(f).collect::<Vec<_>>());
        let cpu_runs: Vec<String> = results.iter().map(|r| format!("{:.1}", r.2)).collect();
        println!(
            "{:<5} | {:>6.2} | {:>6.2} | {:>5.1} | {}",
            codec.name(),
            column(|r| r.0),
            column(|r| r.1),
            column(|r| r.2),
            cpu_runs.join(", ")
        );
    }
    println!("(encoder {WIDTH}x{HEIGHT} at {BITRATE} bps, test pattern rendered outside the measured call; median of {runs} runs x {frames} frames)");
    // An AV1 keyframe request opens a new SVT-AV1 encoder (see src/av1.rs).
    let mut pattern = TestPattern::new(WIDTH as usize, HEIGHT as usize);
    let mut opens = Vec::new();
    for n in 0..5 {
        let t = Instant::now();
        let mut e = VideoEncoder::new(Codec::Av1, WIDTH, HEIGHT, BITRATE, FPS).expect("encoder");
        e.encode(pattern.render(n), false).expect("encode");
        opens.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("AV1 keyframe request (open a new encoder + send the frame): {:.1} ms (median of 5)", median(&opens));

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
