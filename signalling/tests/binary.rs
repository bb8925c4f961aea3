//! The real `signalling` binary: starts from flags, serves, and on SIGTERM
//! closes every socket with 1001 and exits 0.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The address printed on the line that starts with `prefix`.
fn addr_on(lines: &[String], prefix: &str) -> SocketAddr {
    let line = lines.iter().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} line in {lines:?}"));
    let start = line.find("://").expect("url") + 3;
    let rest = &line[start..];
    rest.split_whitespace().next().unwrap().trim_end_matches('/').parse().expect("socket address")
}

/// The binary on ephemeral ports with `args` added, and its stdout by line.
fn spawn_binary(args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signalling"))
        .args(["--no_config", "--streamer_port", "0", "--player_port", "0", "--sfu_port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    (child, out)
}

#[tokio::test]
async fn the_binary_serves_and_shuts_down_cleanly_on_sigterm() {
    let (mut child, mut out) = spawn_binary(&[]);
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let line = tokio::time::timeout(WAIT, out.next_line()).await.expect("prints addresses").unwrap().expect("line");
        lines.push(line);
    }
    let streamer_addr = addr_on(&lines, "streamer");
    let player_addr = addr_on(&lines, "player");

    let mut s = Client::connect(streamer_addr, "streamer").await;
    s.expect_type("config").await;
    s.expect_type("identify").await;
    s.send(json!({"type": "endpointId", "id": "DefaultStreamer"})).await;
    s.expect_type("endpointIdConfirm").await;
    let mut p = Client::connect(player_addr, "player").await;
    p.expect_type("config").await;
    p.expect_type("playerCount").await;
    p.send(json!({"type": "subscribe", "streamerId": "DefaultStreamer"})).await;
    let pid = s.expect_type("playerConnected").await["playerId"].as_str().unwrap().to_string();
    s.send(json!({"type": "offer", "sdp": "v=0", "playerId": pid})).await;
    assert_eq!(p.expect_type("offer").await["sdp"], "v=0");

    let pid_os = child.id().expect("running") as i32;
    // SAFETY: plain kill(2) on our own child process.
    assert_eq!(unsafe { libc_kill(pid_os, 15) }, 0);
    p.expect_close(1001).await;
    s.expect_close(1001).await;
    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("exits in time").unwrap();
    assert!(status.success(), "exit status {status:?}");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[tokio::test]
async fn the_binary_logs_json_lines_and_never_a_token() {
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("player.token");
    std::fs::write(&token_file, "file-token-Z1\n").expect("write token");
    let token_file = token_file.to_str().expect("UTF-8 temporary path");
    let (mut child, mut out) = spawn_binary(&[
        "--log_format",
        "json",
        "--log_level_console",
        "debug",
        "--console_messages",
        "verbose",
        "--streamer_token",
        "flag-token-Z2",
        "--player_token_file",
        token_file,
    ]);
    let mut lines = Vec::new();
    while lines.iter().filter(|l: &&String| l.contains("listening on")).count() < 3 {
        let line = tokio::time::timeout(WAIT, out.next_line()).await.expect("prints addresses").unwrap().expect("line");
        lines.push(line);
    }
    let streamer_addr = addr_on(&lines, "streamer");
    let player_addr = addr_on(&lines, "player");
    assert_eq!(try_connect(player_addr, "/?token=guess-Z3", &[]).await.err(), Some(401));
    let mut s = try_connect(streamer_addr, "/?token=flag-token-Z2", &[]).await.expect("streamer");
    s.expect_type("config").await;
    let mut p = try_connect(player_addr, "/", &[("authorization", "Bearer file-token-Z1")]).await.expect("player");
    p.expect_type("config").await;

    let pid_os = child.id().expect("running") as i32;
    // SAFETY: plain kill(2) on our own child process.
    assert_eq!(unsafe { libc_kill(pid_os, 15) }, 0);
    while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, out.next_line()).await {
        lines.push(line);
    }
    let _ = child.wait().await;
    let json_lines: Vec<&String> = lines.iter().filter(|l| l.starts_with('{')).collect();
    assert!(json_lines.len() >= 3, "{lines:?}");
    for line in &json_lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{line}");
    }
    assert!(json_lines.iter().any(|l| l.contains("refused a player connection")), "{lines:?}");
    let all = lines.join("\n");
    for secret in ["file-token-Z1", "flag-token-Z2", "guess-Z3"] {
        assert!(!all.contains(secret), "{secret} logged:\n{all}");
    }
}
