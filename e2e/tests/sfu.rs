//! Streamer → signalling → SFU → players, each stack a [`Topology`]: real
//! server, real mock-streamer, the SFU and real mock-players in-process,
//! WebRTC on loopback only. (The SFU's own forwarding behaviour, with
//! scripted peers, is tested in `sfu-stub/tests`.)
//!
//! The tests share two cores: they run one at a time (a global lock).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use e2e::topology::{streamer_config, RunningPlayer, SfuSpec, StreamerSpec};
use e2e::{Running, Topology};
use mock_player::live::Live;
use mock_player::rtc::RtcContext;
use mock_player::{PlayerConfig, PlayerStats};
use sfu_stub::{SfuEvent, SfuHandle};
use testkit::wait_until;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A small streamer `S1` (320x240, 30 fps).
fn streamer_spec(respond: bool, audio: bool) -> StreamerSpec {
    StreamerSpec {
        id: "S1".into(),
        width: 320,
        height: 240,
        fps: 30,
        bitrate: 300_000,
        respond,
        audio,
        ..StreamerSpec::default()
    }
}

/// Server, streamer `S1` and the SFU `SFU` forwarding it; no players.
async fn start(streamer: StreamerSpec) -> Running {
    let topology = Topology {
        streamers: vec![streamer],
        sfu: Some(SfuSpec { streamer: Some("S1".into()), ..SfuSpec::default() }),
        ..Topology::default()
    };
    topology.start().await.expect("stack starts")
}

fn sfu(running: &Running) -> &SfuHandle {
    &running.sfu.as_ref().expect("the topology has an SFU").handle
}

/// Wait for an event matching `f`.
async fn wait_event(
    events: &mut broadcast::Receiver<SfuEvent>,
    within: Duration,
    what: &str,
    f: impl Fn(&SfuEvent) -> bool,
) {
    testkit::next_event(events, within, what, f).await;
}

/// Wait until the SFU has sent `startStreaming` and the server lists it
/// (players that list before that would not find it).
async fn wait_streaming(running: &Running, events: &mut broadcast::Receiver<SfuEvent>, what: &str) {
    wait_event(events, Duration::from_secs(20), what, |e| *e == SfuEvent::Streaming).await;
    wait_until(Duration::from_secs(5), "the server to list the SFU", || {
        running.server.snapshot().streamers.iter().any(|s| s.streamer_id == "SFU" && s.streaming)
    })
    .await;
}

/// Wait until `streamer` has registered with the server.
async fn registered(streamer: &mock_streamer::StreamerHandle) {
    let mut events = streamer.events();
    testkit::next_event(&mut events, Duration::from_secs(10), "the streamer to register", |e| {
        matches!(e, mock_streamer::StreamerEvent::Registered { .. })
    })
    .await;
}

fn player_config(running: &Running) -> PlayerConfig {
    PlayerConfig {
        url: format!("ws://{}", running.server.player_addr()),
        streamer_id: Some("SFU".into()),
        join_timeout: Duration::from_secs(30),
        list_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

/// Start `n` players sharing one WebRTC context; each ends with `cancel`
/// or when its own config says so.
fn start_players(rtc: &Arc<RtcContext>, cfg: PlayerConfig, n: usize, cancel: &CancellationToken) -> Vec<RunningPlayer> {
    let cfg = Arc::new(cfg);
    (0..n).map(|i| RunningPlayer::spawn(i, cfg.clone(), Some(rtc.clone()), cancel.clone())).collect()
}

async fn join_all(players: Vec<RunningPlayer>, within: Duration) -> Vec<PlayerStats> {
    let mut out = testkit::within(within, "players to end", async {
        let mut out = Vec::new();
        for p in players {
            out.push(p.task.await.expect("player task"));
        }
        out
    })
    .await;
    out.sort_by_key(|s| s.index);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_players_get_video_through_one_upstream_connection() {
    let _serial = SERIAL.lock().await;
    testkit::init_test_logs();
    let mut running = start(streamer_spec(false, false)).await;
    let mut events = sfu(&running).events();
    wait_streaming(&running, &mut events, "startStreaming").await;

    let rtc = RtcContext::new(true).expect("rtc");
    let cfg = PlayerConfig { expect_frames: Some(60), stop_at_expected_frames: true, ..player_config(&running) };
    let players = start_players(&rtc, cfg, 20, &CancellationToken::new());
    let stats = join_all(players, Duration::from_secs(60)).await;
    for s in &stats {
        assert!(s.passed, "player {} failed: {:?} {:?}", s.index, s.error_kind, s.error);
        assert!(s.sfu, "player {} was not offered by the SFU", s.index);
        assert!(s.video_frames >= 60, "player {}: {} frames", s.index, s.video_frames);
        assert!(s.keyframes >= 1, "player {} saw no keyframe", s.index);
    }
    // Every player left (playerDisconnected): its connection is torn down.
    wait_until(Duration::from_secs(10), "the SFU to drop the players", || sfu(&running).stats().players == 0).await;
    let sfu_stats = sfu(&running).stats();
    println!("SFU: {}", sfu_stats.summary());
    assert_eq!(sfu_stats.players_total, 20);
    assert!(sfu_stats.packets_forwarded > 20 * 60, "{sfu_stats:?}");
    // 20 players joining together cause a handful of keyframe requests.
    assert!(sfu_stats.keyframe_requests_sent <= 10, "{sfu_stats:?}");

    // The streamer served exactly one peer connection: the SFU's.
    let streamer_stats = running.streamers[0].stats();
    let s = &streamer_stats.streamers[0];
    println!("streamer: {}", streamer_stats.summary());
    assert_eq!(s.players_connected_total, 1, "{s:?}");
    // (The streamer also keeps counters per player id for the data channels
    // relayed through the SFU; only one of them gets video.)
    let with_video: Vec<_> = s.players.iter().filter(|p| p.packets_sent > 0).collect();
    assert_eq!(with_video.len(), 1, "{s:?}");
    // Once their channels have closed, the SFU's players are departed players in the
    // streamer's stats: counted in the totals, not kept one by one (they were, for ever).
    wait_until(Duration::from_secs(10), "the streamer to let the SFU's players go", || {
        running.streamers[0].stats().streamers[0].players.len() == 1
    })
    .await;
    let after = &running.streamers[0].stats().streamers[0];
    assert!(after.totals.datachannel_messages_sent >= s.totals.datachannel_messages_sent, "{after:?}");
    assert!(after.totals.input_messages >= 20, "{after:?}");
    assert_eq!(
        s.input_counts.get("RequestInitialSettings").copied(),
        Some(20),
        "every player's data channel reached the streamer"
    );
    let snapshot = running.server.snapshot();
    let s1 = snapshot.streamers.iter().find(|s| s.streamer_id == "S1").expect("S1 listed");
    assert_eq!(s1.subscribers.len(), 1, "{:?}", s1.subscribers);
    assert_eq!(serde_json::to_value(s1.subscribers[0].kind).ok(), Some(serde_json::json!("SFU")));
    let sfu_entry = snapshot.streamers.iter().find(|s| s.streamer_id == "SFU").expect("SFU listed");
    assert!(sfu_entry.streaming);

    let last = running.sfu.take().expect("SFU").handle.stop().await;
    assert!(!last.streaming);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channel_is_relayed_both_ways_per_player_with_audio_and_video() {
    let _serial = SERIAL.lock().await;
    testkit::init_test_logs();
    let running = start(streamer_spec(true, true)).await;
    let mut events = sfu(&running).events();
    wait_streaming(&running, &mut events, "startStreaming").await;
    let st = &running.streamers[0];

    let rtc = RtcContext::new(true).expect("rtc");
    let cancel = CancellationToken::new();
    // One player sends input (UI interactions included); one stays quiet.
    let talker = PlayerConfig { input_rate: 20.0, latency_test: true, ..player_config(&running) };
    let talker_players = start_players(&rtc, talker, 1, &cancel);
    let quiet_players = start_players(&rtc, player_config(&running), 1, &cancel);
    wait_until(Duration::from_secs(20), "input relayed to the streamer", || {
        let c = st.input_counts();
        c.get("UIInteraction").copied().unwrap_or(0) >= 5
            && c.get("MouseMove").copied().unwrap_or(0) >= 1
            && c.get("RequestInitialSettings").copied().unwrap_or(0) >= 2
    })
    .await;
    wait_until(Duration::from_secs(10), "responses relayed to the player", || sfu(&running).stats().dc_to_player >= 10)
        .await;
    cancel.cancel();
    let talker = join_all(talker_players, Duration::from_secs(20)).await.remove(0);
    let quiet = join_all(quiet_players, Duration::from_secs(20)).await.remove(0);
    println!("streamer input: {:?}", st.input_counts());
    println!("talker dc: {:?}", talker.dc);
    println!("quiet dc: {:?}", quiet.dc);
    println!("SFU: {}", sfu(&running).stats().summary());
    for p in [&talker, &quiet] {
        assert!(p.dc.opened && p.dc.protocol_received && p.dc.initial_settings_received, "{:?}", p.dc);
    }
    assert!(talker.dc.input_sent >= 5, "{:?}", talker.dc);
    assert!(talker.dc.received.get("Response").copied().unwrap_or(0) >= 1, "{:?}", talker.dc);
    assert!(!talker.dc.rtt_ms.is_empty(), "no latency-test round trip: {:?}", talker.dc);
    // Both tracks were forwarded.
    for p in [&talker, &quiet] {
        for kind in ["video", "audio"] {
            let packets: u64 = p.tracks.iter().filter(|t| t.kind == kind).map(|t| t.packets).sum();
            assert!(packets > 10, "player {}: {kind} packets {packets}: {:?}", p.index, p.tracks);
        }
    }
    // Responses go to the player that asked, only.
    assert_eq!(quiet.dc.received.get("Response").copied().unwrap_or(0), 0, "{:?}", quiet.dc);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamer_restart_sfu_recovers_and_players_rejoin() {
    let _serial = SERIAL.lock().await;
    testkit::init_test_logs();
    let spec = streamer_spec(false, false);
    let mut running = start(spec.clone()).await;
    let mut events = sfu(&running).events();
    wait_streaming(&running, &mut events, "startStreaming").await;

    let rtc = RtcContext::new(true).expect("rtc");
    let cancel = CancellationToken::new();
    let cfg = PlayerConfig { reconnect: true, ..player_config(&running) };
    let players = start_players(&rtc, cfg, 3, &cancel);
    let lives: Vec<Arc<Live>> = players.iter().map(|p| p.live.clone()).collect();
    let frames = |lives: &[Arc<Live>]| lives.iter().map(|l| l.frames.load(Relaxed)).collect::<Vec<_>>();
    wait_until(Duration::from_secs(30), "video at every player", || frames(&lives).iter().all(|f| *f >= 30)).await;

    // The streamer goes away: the SFU stops streaming and drops its players.
    running.streamers.remove(0).stop().await;
    wait_event(&mut events, Duration::from_secs(10), "stopStreaming", |e| *e == SfuEvent::StreamingStopped).await;
    wait_until(Duration::from_secs(10), "players dropped", || sfu(&running).stats().players == 0).await;
    let before = frames(&lives);

    // A new streamer with the same id: the SFU subscribes again, and the
    // players come back and get video again.
    let url = format!("ws://{}", running.server.streamer_addr());
    let st2 = mock_streamer::spawn(streamer_config(&spec, &url).expect("config")).expect("mock-streamer starts");
    registered(&st2).await;
    running.streamers.push(st2);
    wait_streaming(&running, &mut events, "startStreaming again").await;
    wait_until(Duration::from_secs(30), "video again at every player", || {
        frames(&lives).iter().zip(&before).all(|(now, then)| *now >= then + 30)
    })
    .await;
    cancel.cancel();
    let stats = join_all(players, Duration::from_secs(20)).await;
    for s in &stats {
        assert!(s.reconnects >= 1 && !s.rejoins.is_empty(), "player {}: {:?}", s.index, s);
    }
    let sfu_stats = sfu(&running).stats();
    println!("SFU: {}", sfu_stats.summary());
    assert_eq!(sfu_stats.upstream_connects, 2);
    assert_eq!(running.streamers[0].stats().streamers[0].players_connected_total, 1);
    running.stop().await;
}

/// A player through the SFU: `offer` with `sfu: true`, `dataChannelRequest`,
/// pre-negotiated channels from `peerDataChannels`, `peerDataChannelsReady`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_streams_through_sfu() {
    let _serial = SERIAL.lock().await;
    testkit::init_test_logs();
    let running = start(streamer_spec(false, false)).await;
    let mut events = sfu(&running).events();
    wait_event(&mut events, Duration::from_secs(15), "the SFU to stream", |e| *e == SfuEvent::Streaming).await;

    let cfg = PlayerConfig {
        url: format!("ws://{}", running.server.player_addr()),
        streamer_id: Some("SFU".into()),
        layer: Some((0, 0)),
        input_rate: 10.0,
        latency_test: true,
        duration: Some(Duration::from_secs(4)),
        expect_frames: Some(30),
        join_timeout: Duration::from_secs(15),
        ..Default::default()
    };
    let run = mock_player::run_player(cfg, CancellationToken::new());
    let stats = testkit::within(Duration::from_secs(30), "the player to end", run).await.expect("player runs");
    println!("{}", serde_json::to_string_pretty(&stats).unwrap_or_default());
    assert!(stats.passed, "{:?}", stats.error);
    assert!(stats.sfu, "the offer did not say sfu: true");
    assert!(stats.dc.opened, "{:?}", stats.dc);
    assert!(
        stats.dc.channels.iter().any(|c| c.contains("negotiated")),
        "expected pre-negotiated channels: {:?}",
        stats.dc.channels
    );
    assert!(stats.dc.protocol_received, "{:?}", stats.dc);
    wait_until(Duration::from_secs(5), "input relayed to the streamer", || {
        running.streamers[0].input_counts().get("MouseMove").copied().unwrap_or(0) > 0
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_sfu_renews_a_streamer_connection_that_carried_enough_players() {
    let _serial = SERIAL.lock().await;
    testkit::init_test_logs();
    let topology = Topology {
        streamers: vec![streamer_spec(false, false)],
        sfu: Some(SfuSpec { streamer: Some("S1".into()), renew_upstream_after: Some(2), ..SfuSpec::default() }),
        ..Topology::default()
    };
    let mut running = topology.start().await.expect("stack starts");
    let mut events = sfu(&running).events();
    wait_streaming(&running, &mut events, "startStreaming").await;
    let rtc = RtcContext::new(true).expect("rtc");
    let cfg = PlayerConfig { expect_frames: Some(30), stop_at_expected_frames: true, ..player_config(&running) };
    // Two players, one after the other: each opens its data channels on the upstream connection.
    for round in 0..2 {
        let stats =
            join_all(start_players(&rtc, cfg.clone(), 1, &CancellationToken::new()), Duration::from_secs(30)).await;
        assert!(stats[0].passed && stats[0].dc.opened, "round {round}: {:?}", stats[0].error);
    }
    // The second one gone, nobody connected: the SFU renews its streamer connection...
    wait_until(Duration::from_secs(15), "the upstream connection to be renewed", || {
        let s = sfu(&running).stats();
        s.upstream_renewals == 1 && s.upstream_connects >= 2 && s.streaming
    })
    .await;
    // ...and the next player streams as before.
    let stats = join_all(start_players(&rtc, cfg, 1, &CancellationToken::new()), Duration::from_secs(30)).await;
    assert!(stats[0].passed, "{:?}", stats[0].error);
    let streamer_stats = running.streamers[0].stats();
    assert!(streamer_stats.streamers[0].players_connected_total >= 2, "the SFU connected twice");
    running.cancel.cancel();
    let _ = running.players.drain(..);
    running.stop().await;
}
