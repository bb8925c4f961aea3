//! Issue 14: every codec Unreal streams (H.264, VP8, VP9, AV1).
//!
//! First against a sender nobody here wrote: `browser_streamer.js` in
//! headless Chromium (libwebrtc's encoders and packetizers) streams to four
//! mock players in one run, each preferring another codec. Each must get the
//! codec it asked for and recognise, without decoding, its frames, its
//! keyframes and its picture size, counted against what the sender's own
//! statistics say it sent (framesSent, keyFramesEncoded): a receiver that
//! took every frame start for a keyframe fails.
//!
//! Skipped with a message where no Chromium is installed, except under
//! `CI=true`, where a missing Chromium is a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::browser::find_chromium;
use e2e::browser_streamer::BrowserStreamer;
use e2e::topology::{RunningPlayer, Topology};

const CODECS: [&str; 4] = ["h264", "vp8", "vp9", "av1"];

fn chromium_or_skip() -> Option<std::path::PathBuf> {
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

/// Held by each test for its whole run: Chromium's encoders take both cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_players_recognise_every_codec_a_libwebrtc_sender_sends() {
    let _serial = SERIAL.lock().await;
    let Some(chromium) = chromium_or_skip() else { return };
    let mut running = Topology { streamers: vec![], ..Topology::default() }.start().await.expect("stack starts");
    let url = format!("ws://{}", running.player_server().player_addr());
    for (i, codec) in CODECS.iter().enumerate() {
        let preference = vec![codec.to_string()];
        let config = mock_player::PlayerConfig {
            url: url.clone(),
            streamer_id: Some("BrowserStreamer".into()),
            codec_preference: preference.clone(),
            ..mock_player::PlayerConfig::default()
        };
        let rtc = mock_player::rtc::RtcContext::with_codec_preference(true, &preference).expect("player rtc");
        running.players.push(RunningPlayer::spawn(i, Arc::new(config), Some(rtc), running.cancel.clone()));
    }
    let streamer_url = format!("ws://{}", running.server.streamer_addr());
    let mut streamer = BrowserStreamer::start(&chromium, &streamer_url, "BrowserStreamer", (320, 180, 30))
        .await
        .expect("the browser streamer registers");

    let deadline = Instant::now() + Duration::from_secs(30);
    while !running.players.iter().all(|p| p.streaming()) {
        if Instant::now() >= deadline {
            let errors = streamer.errors().await;
            let stats = running.stop().await;
            panic!("not every player streamed: {stats:#?}\nstreamer page errors: {errors:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for a few hundred frames each; the players' first keyframe
    // and any the sender sends on their PLIs are in it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let sent = streamer.sender_stats().await.expect("sender stats");
    let stats = running.stop().await;
    streamer.stop().await;

    eprintln!("\nissue 14: Chromium's libwebrtc → four mock players, one codec each");
    eprintln!(
        "player   asked   got    frames  keyframes   fps    picture   (sender: codec, picture, frames, keyframes)"
    );
    for (i, codec) in CODECS.iter().enumerate() {
        let player = &stats[i];
        let video = player.tracks.iter().find(|t| t.kind == "video").cloned().unwrap_or_default();
        let sender = sent.iter().find(|s| Some(&s.player_id) == player.player_id.as_ref());
        eprintln!(
            "  {:<6} {:<6}  {:<5}  {:>6}  {:>9}  {:>5.1}  {:>4}x{:<4}  ({}, {}x{}, {}, {})",
            i,
            codec,
            video.codec,
            video.frames,
            video.keyframes,
            video.fps,
            video.width,
            video.height,
            sender.and_then(|s| s.codec.as_deref()).unwrap_or("?").trim_start_matches("video/"),
            sender.map_or(0, |s| s.frame_width),
            sender.map_or(0, |s| s.frame_height),
            sender.map_or(0, |s| s.frames_sent),
            sender.map_or(0, |s| s.key_frames_encoded),
        );
    }
    for (i, codec) in CODECS.iter().enumerate() {
        let video = stats[i].tracks.iter().find(|t| t.kind == "video").cloned().unwrap_or_default();
        let sender =
            sent.iter().find(|s| Some(&s.player_id) == stats[i].player_id.as_ref()).cloned().unwrap_or_default();
        assert_eq!(video.codec.to_ascii_lowercase(), *codec, "player {i} negotiated its preferred codec");
        // Frames and keyframes as the sender counts them (read a moment
        // before the players stopped: a frame or two may differ).
        assert!(video.frames >= 20, "{codec}: only {} frames recognised", video.frames);
        assert!(
            video.frames.abs_diff(sender.frames_sent) <= 10,
            "{codec}: {} frames recognised, {} sent",
            video.frames,
            sender.frames_sent
        );
        assert!(video.keyframes >= 1, "{codec}: no keyframe recognised");
        assert!(
            video.keyframes.abs_diff(sender.key_frames_encoded) <= 2,
            "{codec}: {} keyframes recognised, {} encoded",
            video.keyframes,
            sender.key_frames_encoded
        );
        // libwebrtc may scale the picture down under load, never up, and
        // keeps its aspect ratio.
        assert!(video.width > 0 && video.height > 0, "{codec}: no picture size read");
        assert!(video.width <= 320 && video.height <= 180, "{codec}: {}x{}", video.width, video.height);
        assert_eq!(video.width * 9, video.height * 16, "{codec}: {}x{} is not 16:9", video.width, video.height);
    }
}
