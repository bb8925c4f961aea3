//! 7: the built-in player page in a real browser (headless Chromium) against
//! the real server and mock streamer: the `<video>` plays decoded frames,
//! and a click on the video arrives at the mock streamer as a `MouseDown`
//! with the right coordinates. A screenshot is saved for a person to look at.
//!
//! Skipped with a message where no Chromium is installed, except under
//! `CI=true`, where a missing Chromium is a failure.

use std::time::Duration;

use e2e::browser::{chromium_for_test, Browser};
use e2e::topology::{StreamerSpec, Topology};
use mock_streamer::StreamerEvent;
use proto::datachannel::ToStreamer;

/// Held by each test for its whole run (an async mutex: tests have their own runtimes).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_page_plays_the_stream_and_sends_clicks() {
    let _serial = SERIAL.lock().await;
    let Some(chromium) = chromium_for_test() else { return };
    let topology = Topology {
        streamers: vec![StreamerSpec { width: 640, height: 360, bitrate: 800_000, ..StreamerSpec::default() }],
        ..Topology::default()
    };
    watch_and_click(&chromium, topology, "", (640, 360), "built-in-page.png").await;
}

/// The same page through the SFU: pre-negotiated data channels, the full
/// simulcast layer by default, input relayed to the streamer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_page_through_the_sfu() {
    let _serial = SERIAL.lock().await;
    let Some(chromium) = chromium_for_test() else { return };
    let topology = Topology {
        streamers: vec![StreamerSpec {
            width: 640,
            height: 360,
            bitrate: 800_000,
            simulcast: true,
            ..StreamerSpec::default()
        }],
        sfu: Some(e2e::topology::SfuSpec::default()),
        ..Topology::default()
    };
    watch_and_click(&chromium, topology, "?StreamerId=SFU", (640, 360), "built-in-page-sfu.png").await;
}

/// Issue 19: the page on node `b` of a two-node cluster plays the streamer of
/// node `a` (every signalling message crosses Redis), directly and through
/// an SFU on node `b`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_page_on_another_cluster_node_directly_and_through_the_sfu() {
    let _serial = SERIAL.lock().await;
    let Some(chromium) = chromium_for_test() else { return };
    let topology = |sfu: bool| Topology {
        signalling: e2e::topology::SignallingSpec { nodes: 2, ..Default::default() },
        streamers: vec![StreamerSpec {
            width: 640,
            height: 360,
            bitrate: 800_000,
            simulcast: sfu,
            ..StreamerSpec::default()
        }],
        sfu: sfu.then(e2e::topology::SfuSpec::default),
        ..Topology::default()
    };
    watch_and_click(&chromium, topology(false), "?StreamerId=DefaultStreamer", (640, 360), "cluster-page.png").await;
    watch_and_click(&chromium, topology(true), "?StreamerId=SFU", (640, 360), "cluster-page-sfu.png").await;
}

/// Open the page, wait for decoded frames of `size`, click at (25%, 75%) of
/// the picture, and check the streamer decodes a MouseDown there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_page_with_force_turn_streams_through_coturn() {
    let Some(chromium) = e2e::browser::chromium_for_test() else { return };
    let secret = "page-turn-secret";
    let Some(turn) = testkit::turn::TurnServer::start(secret).await else { return };
    let mut topology = Topology::default();
    topology.signalling.ice_servers = vec![turn.url()];
    topology.signalling.turn_secret = Some(secret.into());
    topology.streamers[0].width = 320;
    topology.streamers[0].height = 240;
    let running = topology.start().await.expect("stack starts");
    let url = format!("http://{}/?ForceTURN=true", running.player_server().player_addr());
    let mut browser = Browser::launch(&chromium).await.expect("chromium starts");
    browser.navigate(&url).await.expect("page loads");
    let playing =
        "(() => { const v = document.getElementById('video'); return v.videoWidth === 320 && v.currentTime > 1; })()";
    if let Err(e) = browser.wait_for(playing, Duration::from_secs(30)).await {
        panic!("video never played through TURN: {e}\nconsole: {:#?}", browser.console);
    }
    // The pair in use is a relayed one.
    let local_type = "(async () => { const r = await pc.getStats(); let t = null; \
         r.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') \
         t = r.get(s.localCandidateId).candidateType; }); return t; })()";
    let kind = browser.eval(local_type).await.expect("stats");
    assert_eq!(kind.as_str(), Some("relay"), "local candidate of the selected pair");
    browser.close().await;
    running.stop().await;
}

async fn watch_and_click(chromium: &std::path::Path, topology: Topology, query: &str, size: (u32, u32), shot: &str) {
    let running = topology.start().await.expect("stack starts");
    let mut events = running.streamers[0].events();
    let url = format!("http://{}/{query}", running.player_server().player_addr());

    let mut browser = Browser::launch(chromium).await.expect("chromium starts");
    browser.navigate(&url).await.expect("page loads");
    // Decoded frames: the element knows the picture size and its clock runs.
    let playing = format!(
        "(() => {{ const v = document.getElementById('video'); \
         return v.videoWidth === {} && v.videoHeight === {} && v.currentTime > 1 && !v.paused; }})()",
        size.0, size.1
    );
    if let Err(e) = browser.wait_for(&playing, Duration::from_secs(30)).await {
        panic!("video never played: {e}\nconsole: {:#?}", browser.console);
    }
    let frames = browser
        .eval("document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames")
        .await
        .expect("quality")
        .as_u64()
        .unwrap_or(0);
    assert!(frames > 10, "only {frames} frames decoded");
    // The page waits for the streamer's Protocol message before sending input.
    browser.wait_for("streamerReady === true", Duration::from_secs(10)).await.expect("data channel ready");
    // Its status line shows the frames' capture → arrival latency, from the
    // streamer's abs-capture-time as Chromium reads it.
    let latency = "/latency (-?[0-9]+) ms/.exec(document.getElementById('stats').textContent)";
    if let Err(e) = browser.wait_for(&format!("{latency} !== null"), Duration::from_secs(10)).await {
        let line = browser.eval("document.getElementById('stats').textContent").await;
        panic!("no latency in the status line ({e}): {line:?}");
    }
    let ms = browser.eval(&format!("Number({latency}[1])")).await.expect("latency").as_f64().unwrap_or(f64::NAN);
    assert!((0.0..500.0).contains(&ms), "latency {ms} ms on loopback");
    eprintln!("page latency: {ms} ms");

    // Click a quarter of the way across and three quarters down the picture.
    let rect = browser
        .eval(
            "(() => { const r = document.getElementById('video').getBoundingClientRect(); \
             const v = document.getElementById('video'); const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight); \
             const w = v.videoWidth * s, h = v.videoHeight * s; \
             return [r.left + (r.width - w) / 2, r.top + (r.height - h) / 2, w, h]; })()",
        )
        .await
        .expect("video rect");
    let r: Vec<f64> = rect.as_array().expect("array").iter().filter_map(|v| v.as_f64()).collect();
    let (x, y) = (r[0] + r[2] * 0.25, r[1] + r[3] * 0.75);
    browser.click(x, y).await.expect("click");

    let down = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(StreamerEvent::Input { message: ToStreamer::MouseDown { button, x, y }, .. }) => {
                    break (button, x, y)
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .expect("MouseDown reached the streamer");
    let (button, nx, ny) = (down.0, f64::from(down.1) / 65535.0, f64::from(down.2) / 65535.0);
    assert_eq!(button, 0, "left button");
    assert!((nx - 0.25).abs() < 0.01 && (ny - 0.75).abs() < 0.01, "clicked at ({nx:.3}, {ny:.3})");

    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(shot);
    std::fs::write(&out, &png).expect("write screenshot");
    eprintln!("screenshot: {}", out.display());
    browser.close().await;
    running.stop().await;
}
