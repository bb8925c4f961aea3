//! Every bench in `--smoke` mode (tiny sizes, about a second each) against our
//! server started as a child process on free ports: they must still run and
//! produce numbers, so they never rot. Figures are not judged here.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn smoke(bench: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join(format!("{bench}.json"));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([bench, "--smoke", "--server-bin", "builtin", "--json"])
        .arg(&json)
        .args(extra)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the bench");
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for the bench") {
            break st;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bench {bench} --smoke took over 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "bench {bench} --smoke failed: {status}");
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let figures = v["figures"].as_array().expect("figures");
    assert!(!figures.is_empty(), "{bench}: no figures");
    for f in figures {
        assert!(f["median"].is_number(), "{bench}: {} is not a number: {f}", f["name"]);
    }
    assert!(v["cores"].as_u64().unwrap_or(0) >= 1);
    eprintln!("bench {bench} --smoke: {} figures in {:?}", figures.len(), started.elapsed());
}

#[test]
fn benches_produce_numbers() {
    for bench in ["idle", "joins", "latency", "media", "churn", "soak"] {
        smoke(bench, &[]);
    }
    smoke("churn", &["--peer", "player"]);
}

/// The cluster variants: two nodes on a `redis-server` the bench starts.
#[test]
fn cluster_benches_produce_numbers() {
    let installed =
        Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !installed {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true but redis-server is not installed");
        eprintln!("SKIPPED: redis-server not installed (apt-get install redis-server)");
        return;
    }
    for bench in ["joins", "latency"] {
        smoke(bench, &["--nodes", "2"]);
    }
}
