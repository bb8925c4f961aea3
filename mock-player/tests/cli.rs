//! The binary's exit codes: 0 pass, 1 fail (reason printed), 2 usage/setup.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{player_url, server, streamer};
use testkit::fake_streamer::FakeStreamer;

async fn run(args: &[&str]) -> (i32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-player"))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("mock-player exits in time")
    .expect("mock-player runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let (code, text) = run(&["--url", "http://127.0.0.1:1"]).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("ws or wss"), "{text}");
    let (code, _) = run(&["--no-such-flag"]).await;
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_streamer_exits_1_with_reason() {
    let srv = server().await;
    let _s = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    let url = player_url(&srv);
    let (code, text) = run(&["--url", &url, "--streamer", "Nope", "--progress", "off"]).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL: 1 player(s): subscribe failed: Streamer Nope does not exist."), "{text}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_passes_with_reports() {
    let srv = server().await;
    let st = streamer(&srv, "S1").await;
    let dir = std::env::temp_dir().join(format!("mock-player-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("r.json");
    let html = dir.join("r.html");
    let url = player_url(&srv);
    let (code, text) = run(&[
        "--url",
        &url,
        "--players",
        "3",
        "--ramp",
        "10",
        "--expect-frames",
        "30",
        "--min-fps",
        "20",
        "--progress",
        "plain",
        "--report",
        json.to_str().unwrap_or_default(),
        "--html",
        html.to_str().unwrap_or_default(),
    ])
    .await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("PASS"), "{text}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("valid json");
    assert_eq!(report["passed"], 3);
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("<svg"));
    let (code, text) = run(&["--url", &url, "--duration", "1", "--expect-frames", "1000", "--progress", "off"]).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("expected at least 1000"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
    st.stop().await;
    srv.shutdown().await;
}
