//! Headless Chromium driven over the DevTools protocol (CDP), from Rust.
//!
//! Just enough of CDP for end-to-end tests of a player page: open a page,
//! evaluate JavaScript, click, and take a screenshot. Talking CDP over our own
//! WebSocket client keeps the tests free of Node and of browser downloads:
//! Debian's `chromium` package is all they need.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What can go wrong driving the browser.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("cannot start {path}: {source}")]
    Launch { path: PathBuf, source: std::io::Error },
    #[error("chromium did not announce its DevTools endpoint: {0}")]
    NoEndpoint(String),
    #[error("DevTools connection: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("DevTools connection closed")]
    Closed,
    #[error("DevTools command {method} failed: {error}")]
    Command { method: String, error: Value },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("JavaScript threw: {0}")]
    Script(String),
    #[error("screenshot: {0}")]
    Screenshot(String),
}

/// Where a Chromium binary is: `$CHROMIUM`, else the usual paths.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        return path.exists().then_some(path);
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The Chromium a browser test runs, or `None` to skip it: under `CI=true`
/// a missing Chromium is a failure, never a skip.
pub fn chromium_for_test() -> Option<PathBuf> {
    match find_chromium() {
        Some(path) => Some(path),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but no Chromium found: install it with `apt-get install -y chromium`")
        }
        None => {
            eprintln!("SKIPPED: no Chromium found (apt-get install -y chromium, or set CHROMIUM=/path)");
            None
        }
    }
}

/// The flags these machines need (see `shared/notes/webrtc-here.md`): no
/// sandbox as root, no GPU, nothing that reaches out to the network, and
/// WebRTC host candidates on loopback without mDNS.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--window-size=1280,800",
];

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running headless Chromium with one page attached.
pub struct Browser {
    child: Child,
    socket: Socket,
    session: String,
    next_id: AtomicU64,
    _profile: tempfile::TempDir,
    /// Console messages and exceptions seen so far (for test failure output).
    pub console: Vec<String>,
}

impl Browser {
    /// Start Chromium and open a blank page.
    pub async fn launch(path: &Path) -> Result<Browser, BrowserError> {
        let profile = tempfile::tempdir().map_err(|source| BrowserError::Launch { path: path.into(), source })?;
        let mut child = Command::new(path)
            .args(CHROMIUM_FLAGS)
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BrowserError::Launch { path: path.into(), source })?;
        let stderr = child.stderr.take().ok_or_else(|| BrowserError::NoEndpoint("no stderr".into()))?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_string());
                }
                seen.push(line);
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| BrowserError::NoEndpoint(seen.join("\n")))?;
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (socket, _) = tokio_tungstenite::connect_async(endpoint.as_str()).await?;
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: AtomicU64::new(1),
            _profile: profile,
            console: Vec::new(),
        };
        let target = browser.call_browser("Target.createTarget", json!({"url": "about:blank"})).await?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_string();
        let attached =
            browser.call_browser("Target.attachToTarget", json!({"targetId": target_id, "flatten": true})).await?;
        browser.session = attached["sessionId"].as_str().unwrap_or_default().to_string();
        browser.call("Page.enable", json!({})).await?;
        browser.call("Runtime.enable", json!({})).await?;
        Ok(browser)
    }

    async fn call_browser(&mut self, method: &str, params: Value) -> Result<Value, BrowserError> {
        self.send_command(None, method, params).await
    }

    /// Send a CDP command to the page and wait for its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, BrowserError> {
        let session = self.session.clone();
        self.send_command(Some(session), method, params).await
    }

    async fn send_command(
        &mut self,
        session: Option<String>,
        method: &str,
        params: Value,
    ) -> Result<Value, BrowserError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = Value::String(session);
        }
        self.socket.send(Message::text(command.to_string())).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| BrowserError::Timeout(method.to_string()))?;
            let text = match next {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(BrowserError::Closed),
            };
            let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
            if value["id"].as_u64() == Some(id) {
                if let Some(error) = value.get("error") {
                    return Err(BrowserError::Command { method: method.to_string(), error: error.clone() });
                }
                return Ok(value["result"].clone());
            }
            self.note_event(&value);
        }
    }

    fn note_event(&mut self, event: &Value) {
        match event["method"].as_str() {
            Some("Runtime.consoleAPICalled") => {
                let args: Vec<String> = event["params"]["args"]
                    .as_array()
                    .map(|a| a.iter().map(|v| v["value"].to_string()).collect())
                    .unwrap_or_default();
                self.console.push(format!("console.{}: {}", event["params"]["type"], args.join(" ")));
            }
            Some("Runtime.exceptionThrown") => {
                self.console.push(format!("exception: {}", event["params"]["exceptionDetails"]));
            }
            _ => {}
        }
    }

    /// Load `url` in the page.
    pub async fn navigate(&mut self, url: &str) -> Result<(), BrowserError> {
        self.call("Page.navigate", json!({"url": url})).await.map(|_| ())
    }

    /// Evaluate a JavaScript expression (promises awaited) and return its value.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, BrowserError> {
        let result = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}))
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(BrowserError::Script(exception.to_string()));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Evaluate `expression` until it is `true`, or fail after `timeout`.
    /// A script error (the page is still loading, say) counts as "not yet".
    pub async fn wait_for(&mut self, expression: &str, timeout: Duration) -> Result<(), BrowserError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match self.eval(expression).await {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(other) => other.to_string(),
                Err(BrowserError::Script(e)) => e,
                Err(e) => return Err(e),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(BrowserError::Timeout(format!("{expression} (last: {last})")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A left click at page coordinates (CSS pixels).
    pub async fn click(&mut self, x: f64, y: f64) -> Result<(), BrowserError> {
        self.call("Input.dispatchMouseEvent", json!({"type": "mouseMoved", "x": x, "y": y})).await?;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1}),
            )
            .await?;
        }
        Ok(())
    }

    /// A PNG of the page as it is now.
    pub async fn screenshot(&mut self) -> Result<Vec<u8>, BrowserError> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await?;
        let data = shot["data"].as_str().ok_or_else(|| BrowserError::Screenshot("no data".into()))?;
        base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| BrowserError::Screenshot(e.to_string()))
    }

    /// Close the browser.
    pub async fn close(mut self) {
        let _ = self.call_browser("Browser.close", json!({})).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}
