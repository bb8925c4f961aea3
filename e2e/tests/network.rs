//! What a load test sees of the network: per-frame latency (the streamer's
//! `abs-capture-time`, forwarded by the SFU), repair traffic and freezes on a
//! bad network (`--impair`, in the players' own UDP path), and TURN through a
//! real coturn. Real signalling server, mock streamer, SFU and players, all
//! on loopback.

use std::time::Duration;

use e2e::sfu::SfuSpec;
use mock_player::{run_load, LoadConfig, LoadReport, PlayerConfig, PlayerStats};
use signalling::config::{Secret, TurnConfig};
use signalling::{ServerConfig, ServerHandle};
use tokio_util::sync::CancellationToken;

/// The streams are measured against wall-clock intervals: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Stack {
    server: ServerHandle,
    streamer: mock_streamer::StreamerHandle,
    sfu: Option<e2e::sfu::RunningSfu>,
}

impl Stack {
    /// Server (with `peer_options` and TURN credentials from `turn_secret`),
    /// streamer `S1` at 320×240, and with `sfu` the SFU `SFU` forwarding it.
    async fn start(sfu: bool, ice_servers: Option<(&str, &str)>) -> Stack {
        Self::start_with(sfu, ice_servers, None).await
    }

    /// [`Stack::start`], or with `static_server` the server's `config` names
    /// that ICE server object as it is (its own username and credential).
    async fn start_with(
        sfu: bool,
        ice_servers: Option<(&str, &str)>,
        static_server: Option<serde_json::Value>,
    ) -> Stack {
        let mut config = ServerConfig::ephemeral();
        if let Some(server) = static_server {
            config.peer_options =
                serde_json::json!({ "iceServers": [server] }).as_object().cloned().unwrap_or_default();
        }
        if let Some((url, secret)) = ice_servers {
            config.peer_options =
                serde_json::json!({"iceServers": [{"urls": [url]}]}).as_object().cloned().unwrap_or_default();
            let secret = Secret::new(secret).expect("a secret");
            config.turn = Some(TurnConfig { secret, ttl: Duration::from_secs(600) });
        }
        let server = signalling::run(config).await.expect("server starts");
        let streamer = mock_streamer::spawn(mock_streamer::StreamerConfig {
            url: format!("ws://{}", server.streamer_addr()),
            streamer_ids: vec!["S1".into()],
            video: mock_streamer::video::VideoSettings { width: 320, height: 240, fps: 30, bitrate_bps: 300_000 },
            simulcast: sfu,
            ..Default::default()
        })
        .expect("streamer starts");
        let sfu = match sfu {
            true => Some(
                e2e::sfu::start(&SfuSpec { streamer: Some("S1".into()), ..SfuSpec::default() }, &server)
                    .await
                    .expect("sfu starts"),
            ),
            false => None,
        };
        Stack { server, streamer, sfu }
    }

    fn player(&self, secs: u64) -> PlayerConfig {
        PlayerConfig {
            url: format!("ws://{}", self.server.player_addr()),
            streamer_id: Some(if self.sfu.is_some() { "SFU" } else { "S1" }.into()),
            duration: Some(Duration::from_secs(secs)),
            join_timeout: Duration::from_secs(15),
            list_interval: Duration::from_millis(200),
            ..PlayerConfig::default()
        }
    }

    async fn stop(self) -> mock_streamer::StatsSnapshot {
        if let Some(sfu) = self.sfu {
            sfu.stop().await;
        }
        let stats = self.streamer.stop().await;
        self.server.shutdown().await;
        stats
    }
}

async fn run(cfg: PlayerConfig, players: usize) -> LoadReport {
    let load = LoadConfig { players, ramp: 0.0, max_joining: players, ..LoadConfig::default() };
    let secs = cfg.duration.map_or(30, |d| d.as_secs() + 30);
    let report = tokio::time::timeout(Duration::from_secs(secs), run_load(cfg, load, CancellationToken::new()))
        .await
        .expect("players finish in time")
        .expect("players start");
    println!("{}", report.to_text());
    report
}

fn complete_share(s: &PlayerStats) -> f64 {
    s.frames_complete as f64 / (s.frames_complete + s.frames_incomplete).max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_carries_its_capture_time_direct_and_through_the_sfu() {
    let _one = SERIAL.lock().await;
    for sfu in [false, true] {
        let stack = Stack::start(sfu, None).await;
        let report = run(stack.player(4), 1).await;
        let p = &report.player_stats[0];
        assert!(p.passed, "sfu={sfu}: {:?}", p.error);
        assert_eq!(p.sfu, sfu);
        // Nearly every complete frame had a capture time (the first few may
        // start before the answer's extension id is known).
        assert!(p.latency.n + 5 >= p.frames_complete && p.latency.n > 60, "sfu={sfu}: {p:?}");
        // One host, one clock: capture → decodable on loopback is milliseconds.
        assert!(p.latency.p50_ms > 0.0 && p.latency.p50_ms < 100.0, "sfu={sfu}: {:?}", p.latency);
        assert!(p.clock_offset.source.starts_with("assumed"), "{:?}", p.clock_offset);
        stack.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_lossy_slow_network_players_nack_the_streamer_resends_and_frames_arrive() {
    let _one = SERIAL.lock().await;
    let stack = Stack::start(false, None).await;
    // Two players, one on the bad network; the clock offset estimated over the data channel.
    let cfg = PlayerConfig {
        impair: Some("delay=40ms,jitter=10ms,loss=2%".parse().expect("a profile")),
        impair_share: 0.5,
        latency_test: true,
        ..stack.player(8)
    };
    let report = run(cfg, 2).await;
    assert_eq!(report.profiles.len(), 2, "{:?}", report.profiles.keys());
    let clean = report.player_stats.iter().find(|p| p.profile == "clean").expect("a clean player");
    let bad = report.player_stats.iter().find(|p| p.profile != "clean").expect("an impaired player");
    assert!(bad.passed && clean.passed, "{:?} {:?}", bad.error, clean.error);
    assert!(bad.repair.nacks_sent > 0 && bad.repair.nacked_packets_sent > 0, "{:?}", bad.repair);
    assert!(bad.retransmitted > 0, "no retransmission arrived: {bad:?}");
    assert!(complete_share(bad) >= 0.99, "{} complete, {} incomplete", bad.frames_complete, bad.frames_incomplete);
    // The delay shows in the latency (40 ms one way, ± 10 ms), and the clean player has none of it.
    assert!(bad.latency.p50_ms >= 30.0, "{:?}", bad.latency);
    assert!(clean.latency.p50_ms < bad.latency.p50_ms - 20.0, "{:?} vs {:?}", clean.latency, bad.latency);
    assert!(bad.clock_offset.source.starts_with("estimated"), "{:?}", bad.clock_offset);
    assert!(clean.repair.nacks_sent == 0 && clean.retransmitted == 0, "{:?}", clean.repair);
    assert!(report.to_text().contains("profile delay=40ms,jitter=10ms,loss=2%"), "{}", report.to_text());
    // The streamer says what it resent, and why.
    let streamer = stack.stop().await;
    let repair = streamer.streamers[0].repair;
    assert!(repair.nacks_received > 0 && repair.rtp_resent > 0, "{repair:?}");
    assert!(repair.rtp_resent >= bad.retransmitted, "{repair:?} vs {} received", bad.retransmitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_sfu_the_sfu_resends_what_a_lossy_player_lost() {
    let _one = SERIAL.lock().await;
    let stack = Stack::start(true, None).await;
    let cfg = PlayerConfig { impair: Some("delay=20ms,loss=2%".parse().expect("a profile")), ..stack.player(6) };
    let report = run(cfg, 1).await;
    let p = &report.player_stats[0];
    assert!(p.passed && p.sfu, "{:?}", p.error);
    assert!(p.repair.nacks_sent > 0 && p.retransmitted > 0, "{:?} {}", p.repair, p.retransmitted);
    assert!(p.latency.n > 60 && p.latency.p50_ms >= 15.0, "{:?}", p.latency);
    let sfu = stack.sfu.as_ref().expect("an sfu").handle.stats();
    println!("SFU: {}", sfu.summary());
    assert!(sfu.repair.nacks_received > 0 && sfu.repair.rtp_resent > 0, "{:?}", sfu.repair);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_twenty_percent_loss_freezes_are_counted_not_hidden() {
    let _one = SERIAL.lock().await;
    let stack = Stack::start(false, None).await;
    // Three players: at 20 % loss each way a DTLS handshake can itself take
    // several of its 1 s retransmissions (or fail), as for a browser.
    let cfg = PlayerConfig { impair: Some("loss=20%".parse().expect("a profile")), ..stack.player(10) };
    let report = run(cfg, 3).await;
    let streamed: Vec<&PlayerStats> = report.player_stats.iter().filter(|p| p.joined).collect();
    assert!(!streamed.is_empty(), "no player got through 20 % loss: {:?}", report.failures);
    for p in &streamed {
        let secs = p.tracks.iter().map(|t| t.active_secs).fold(0.0, f64::max);
        if secs < 3.0 {
            continue;
        }
        assert!(
            p.freezes >= 1 && p.frozen_secs > 0.0,
            "freezes {} for {:.2} s in {secs:.1} s",
            p.freezes,
            p.frozen_secs
        );
        // Most of the damage is repaired (late: hence the freezes).
        assert!(p.repair.nacks_sent > 0 && p.retransmitted > 0, "{:?}", p.repair);
    }
    assert!(report.all.freezes.max >= 1.0, "{:?}", report.all.freezes);
    assert!(report.timeline.iter().any(|s| s.freezes > 0), "the timeline shows the freezes");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_told_not_to_nack_never_does() {
    let _one = SERIAL.lock().await;
    let stack = Stack::start(false, None).await;
    let cfg = PlayerConfig { nack: false, impair: Some("loss=3%".parse().expect("a profile")), ..stack.player(5) };
    let report = run(cfg, 1).await;
    let p = &report.player_stats[0];
    assert!(p.joined, "{:?}", p.error);
    assert_eq!((p.repair.nacks_sent, p.retransmitted), (0, 0), "{:?}", p.repair);
    assert!(p.loss > 0.0, "the losses stand: {p:?}");
    let streamer = stack.stop().await;
    assert_eq!(streamer.streamers[0].repair.rtp_resent, 0);
}

const SECRET: &str = "pixel-streaming-test-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_stream_through_coturn_direct_and_through_the_sfu() {
    let _one = SERIAL.lock().await;
    let Some(turn) = testkit::turn::TurnServer::start(SECRET).await else { return };
    for sfu in [false, true] {
        let stack = Stack::start(sfu, Some((&turn.url(), SECRET))).await;
        let cfg = PlayerConfig { relay_only: true, ..stack.player(7) };
        let report = run(cfg, 1).await;
        let p = &report.player_stats[0];
        assert!(p.passed, "sfu={sfu}: {:?} {:?}", p.error_kind, p.error);
        // (webrtc-rs 0.21 takes 2–3 s to connect over a relay.)
        assert!(p.video_frames > 30, "sfu={sfu}: {} frames", p.video_frames);
        stack.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_turn_secret_fails_with_the_turn_servers_reason() {
    let _one = SERIAL.lock().await;
    let Some(turn) = testkit::turn::TurnServer::start(SECRET).await else { return };
    let stack = Stack::start(false, Some((&turn.url(), "not-the-secret"))).await;
    let cfg = PlayerConfig { relay_only: true, ..stack.player(5) };
    let started = std::time::Instant::now();
    let report = run(cfg, 1).await;
    let p = &report.player_stats[0];
    assert!(!p.passed);
    assert_eq!(p.error_kind.as_deref(), Some("turn_refused"), "{:?}", p.error);
    assert_eq!(p.error.as_deref(), Some("TURN allocation refused: 401 Unauthorized"));
    // Told at once, not after the join timeout.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_turn_credential_fails_with_the_turn_servers_reason() {
    let _one = SERIAL.lock().await;
    let Some(turn) = testkit::turn::TurnServer::start(SECRET).await else { return };
    // A credential minted with the right secret, valid until an hour ago.
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_sub(3600);
    let expired = TurnConfig { secret: Secret::new(SECRET).expect("a secret"), ttl: Duration::ZERO };
    let (username, credential) = signalling::turn::credentials(&expired, "player", an_hour_ago);
    let server = serde_json::json!({"urls": [turn.url()], "username": username, "credential": credential});
    let stack = Stack::start_with(false, None, Some(server)).await;
    let cfg = PlayerConfig { relay_only: true, ..stack.player(5) };
    let report = run(cfg, 1).await;
    let p = &report.player_stats[0];
    assert_eq!(p.error_kind.as_deref(), Some("turn_refused"), "{:?}", p.error);
    assert_eq!(p.error.as_deref(), Some("TURN allocation refused: 401 Unauthorized"));
    stack.stop().await;
}
