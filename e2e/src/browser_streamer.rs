//! A streamer whose media stack nobody here wrote: `browser_streamer.js` in a
//! headless Chromium tab (libwebrtc's encoder and congestion control), for
//! tests that must check our viewers against what a real sender does with
//! their feedback (issue 18).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::browser::{Browser, BrowserError};

const SCRIPT: &str = include_str!("browser_streamer.js");

/// What the browser streamer sends one peer (its `outbound-rtp` and the
/// nominated pair's bandwidth estimate), as `ps.senderStats()` reports it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SenderStats {
    pub player_id: String,
    pub sfu: bool,
    pub bytes_sent: f64,
    /// Frames sent and keyframes encoded, over every encoding.
    pub frames_sent: u64,
    pub key_frames_encoded: u64,
    pub frame_width: u32,
    pub frame_height: u32,
    pub quality_limitation_reason: Option<String>,
    pub target_bitrate: Option<f64>,
    pub available_outgoing_bitrate: Option<f64>,
    pub codec: Option<String>,
    /// `performance.now()` of the reading, ms.
    pub at: f64,
}

/// A running browser streamer.
pub struct BrowserStreamer {
    browser: Browser,
}

impl BrowserStreamer {
    /// Start Chromium, open a blank page, run the streamer against the
    /// server's streamer URL (`ws://127.0.0.1:<port>`) as `id`, and wait
    /// until the server confirmed its id.
    pub async fn start(
        chromium: &Path,
        streamer_url: &str,
        id: &str,
        (width, height, fps): (u32, u32, u32),
    ) -> Result<BrowserStreamer, BrowserError> {
        let mut browser = Browser::launch(chromium).await?;
        let script = SCRIPT
            .replace("__URL__", streamer_url)
            .replace("__ID__", id)
            .replace("__WIDTH__", &width.to_string())
            .replace("__HEIGHT__", &height.to_string())
            .replace("__FPS__", &fps.to_string());
        browser.eval(&script).await?;
        browser.wait_for("window.ps.registered === true", Duration::from_secs(10)).await?;
        Ok(BrowserStreamer { browser })
    }

    /// What the streamer sends each of its peers now.
    pub async fn sender_stats(&mut self) -> Result<Vec<SenderStats>, BrowserError> {
        let value = self.browser.eval("window.ps.senderStats()").await?;
        serde_json::from_value(value).map_err(|e| BrowserError::Script(format!("senderStats: {e}")))
    }

    /// Errors the page recorded (signalling or WebRTC calls that threw).
    pub async fn errors(&mut self) -> Vec<String> {
        let value = self.browser.eval("window.ps.errors").await.unwrap_or_default();
        serde_json::from_value(value).unwrap_or_default()
    }

    /// The last offer the streamer sent and the last answer it got (SDP), for
    /// failure output.
    pub async fn last_negotiation(&mut self) -> (String, String) {
        let text = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let offer = self.browser.eval("window.ps.lastOffer || ''").await.unwrap_or_default();
        let answer = self.browser.eval("window.ps.lastAnswer || ''").await.unwrap_or_default();
        (text(offer), text(answer))
    }

    /// Console output of the page so far.
    pub fn console(&self) -> &[String] {
        &self.browser.console
    }

    pub async fn stop(self) {
        self.browser.close().await;
    }
}
