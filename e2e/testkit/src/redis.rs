//! A throwaway `redis-server` on a free loopback port with persistence off,
//! killed on drop; stopped and started again on the same port to test what
//! its clients do when it goes away. Under `CI=true` a missing `redis-server`
//! is a failure; elsewhere the caller skips with a note.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running (or stopped) `redis-server`.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Start one, or `None` (with a note) when redis-server is not
    /// installed; under `CI=true` that panics instead.
    pub async fn start() -> Option<RedisServer> {
        let installed =
            Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
        if !installed {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is not installed: CI must install it (apt-get install redis-server; see .ci/run)");
            }
            eprintln!("NOTE: redis-server not installed; Redis tests skipped (apt-get install redis-server)");
            return None;
        }
        let [port] = crate::ports::free_ports::<1>().expect("a free port");
        let mut redis = RedisServer { port, child: None };
        redis.restart().await;
        Some(redis)
    }

    /// Its process id while it runs (for CPU readings).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it (SIGKILL: its data is gone, as persistence is off).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port, empty, and wait until it answers PING.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).await.as_deref() != Some("+PONG\r\n") {
            assert!(Instant::now() < deadline, "redis-server answers PING within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Send one command (RESP array of bulk strings); the raw reply, or
    /// `None` when Redis does not answer.
    pub async fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.ok()?.ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
