//! A throwaway coturn (`turnserver`) on a free loopback port, relaying on
//! 127.0.0.1 only, with coturn's `use-auth-secret` (the credentials
//! `signalling --turn_secret` mints); killed on drop. Under `CI=true` a
//! missing `turnserver` is a failure; elsewhere the caller skips with a note.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running coturn.
pub struct TurnServer {
    pub port: u16,
    child: Child,
    /// Its SQLite database (coturn wants one, even with a static secret).
    db: std::path::PathBuf,
}

impl TurnServer {
    /// Start one sharing `secret`, or `None` (with a note) when coturn is not
    /// installed; under `CI=true` that panics instead.
    pub async fn start(secret: &str) -> Option<TurnServer> {
        let installed = Command::new("turnserver")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "coturn's turnserver is not installed: CI must install it (apt-get install coturn; see .ci/run)"
                );
            }
            eprintln!("NOTE: coturn not installed; TURN tests skipped (apt-get install coturn)");
            return None;
        }
        let port = free_udp_port();
        let db = std::env::temp_dir().join(format!("testkit-turndb-{}-{port}.sqlite", std::process::id()));
        // Relay ports: a range of its own above the listening port's.
        let min = 20_000 + (port % 20_000) / 100 * 100;
        let args = [
            "-n".to_string(),
            "--listening-ip=127.0.0.1".into(),
            "--relay-ip=127.0.0.1".into(),
            format!("--listening-port={port}"),
            format!("--min-port={min}"),
            format!("--max-port={}", min + 99),
            "--use-auth-secret".into(),
            format!("--static-auth-secret={secret}"),
            "--realm=pixelstreaming.test".into(),
            "--no-tls".into(),
            "--no-dtls".into(),
            "--no-tcp".into(),
            "--no-cli".into(),
            // The peers are on 127.0.0.1 too: coturn refuses loopback peers unless told.
            "--allow-loopback-peers".into(),
            "--fingerprint".into(),
            "--no-stdout-log".into(),
            "--log-file=/dev/null".into(),
            "--pidfile=/dev/null".into(),
            format!("--userdb={}", db.display()),
        ];
        let child = Command::new("turnserver")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver starts");
        let server = TurnServer { port, child, db };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_binding(port) {
            assert!(Instant::now() < deadline, "coturn answers a STUN binding request within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(server)
    }

    /// `turn:127.0.0.1:<port>?transport=udp`
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.db);
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a free UDP port")
}

/// Whether a STUN binding request to the port is answered within 200 ms.
fn answers_binding(port: u16) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else { return false };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(&[7; 12]);
    if socket.send_to(&request, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[0..2] == [0x01, 0x01])
}
