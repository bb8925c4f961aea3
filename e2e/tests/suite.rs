//! The end-to-end suite: real server, real mock streamers and players, real
//! WebRTC on loopback, each test on its own ephemeral ports.
//!
//! Tests in this file run one at a time: each brings up a whole stack, and
//! 2 cores shared by several stacks would measure the machine, not the code.

use std::time::Duration;

use e2e::tap::{Direction, Recorded, Tap};
use e2e::topology::{player_config, streamer_config, PlayerGroup, RunningPlayer, StreamerSpec, Topology};
use tokio_util::sync::CancellationToken;

/// Held by each test for its whole run (an async mutex: tests have their own runtimes).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(30);

/// Wait until `f` holds, polling; panic with `what` after `timeout`.
async fn until(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    testkit::wait_until(timeout, what, f).await
}

/// The index of the first record matching, after `from`.
fn find(log: &[Recorded], from: usize, conn: usize, dir: Direction, type_name: &str) -> Option<usize> {
    log.iter()
        .enumerate()
        .skip(from)
        .find(|(_, r)| r.connection == conn && r.direction == dir && r.type_name() == type_name)
        .map(|(i, _)| i)
}

fn small_streamer(id: &str) -> StreamerSpec {
    StreamerSpec { id: id.into(), width: 320, height: 240, bitrate: 300_000, ..StreamerSpec::default() }
}

/// 1 and 2: the seed's example sequence, message by message, then the two
/// `opt` blocks (player leaves; streamer leaves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_sequence_message_by_message_then_both_disconnects() {
    let _serial = SERIAL.lock().await;
    let server = signalling::run(signalling::ServerConfig::ephemeral()).await.unwrap();
    // One tap per listener; both share one log so the order across them is real.
    let streamer_tap = Tap::start(format!("ws://{}", server.streamer_addr())).await.unwrap();
    let player_tap = Tap::start(format!("ws://{}", server.player_addr())).await.unwrap();

    let streamer =
        mock_streamer::spawn(streamer_config(&small_streamer("DefaultStreamer"), &streamer_tap.url()).unwrap())
            .unwrap();
    streamer_tap
        .wait_for("endpointIdConfirm", WAIT, |l| find(l, 0, 0, Direction::FromServer, "endpointIdConfirm").is_some())
        .await;

    let cancel = CancellationToken::new();
    let config = player_config(&PlayerGroup { reconnect: false, ..PlayerGroup::default() }, &player_tap.url())
        .expect("a clean group");
    let rtc = mock_player::rtc::RtcContext::new(true).unwrap();
    let player = RunningPlayer::spawn(0, std::sync::Arc::new(config), Some(rtc), cancel.clone());
    until("player streaming", WAIT, || player.streaming()).await;

    // Candidates trickle both ways (the last ones may trail the first RTP).
    let both_ways = |l: &[Recorded]| {
        find(l, 0, 0, Direction::ToServer, "iceCandidate").is_some()
            && find(l, 0, 0, Direction::FromServer, "iceCandidate").is_some()
    };
    let s = streamer_tap.wait_for("candidates at the streamer", WAIT, both_ways).await;
    let p = player_tap.wait_for("candidates at the player", WAIT, both_ways).await;
    // Streamer connection: config, identify, endpointId, endpointIdConfirm,
    // then playerConnected, offer out, answer in, candidates both ways.
    let order = |log: &[Recorded], steps: &[(Direction, &str)]| {
        let mut at = 0;
        for (dir, t) in steps {
            at = find(log, at, 0, *dir, t).unwrap_or_else(|| panic!("{t} ({dir:?}) missing or out of order")) + 1;
        }
    };
    use Direction::{FromServer as In, ToServer as Out};
    order(
        &s,
        &[
            (In, "config"),
            (In, "identify"),
            (Out, "endpointId"),
            (In, "endpointIdConfirm"),
            (In, "playerConnected"),
            (Out, "offer"),
            (In, "answer"),
        ],
    );
    // playerCount follows config from the server, but the player answers
    // config at once: its listStreamers may pass the tap before playerCount
    // (seen in CI), so each is ordered after config only.
    order(&p, &[(In, "config"), (In, "playerCount")]);
    order(
        &p,
        &[
            (In, "config"),
            (Out, "listStreamers"),
            (In, "streamerList"),
            (Out, "subscribe"),
            (In, "offer"),
            (Out, "answer"),
        ],
    );
    // playerId rules as the peers saw them.
    let pc = &s[find(&s, 0, 0, In, "playerConnected").unwrap()].json;
    let pid = pc["playerId"].as_str().unwrap().to_string();
    assert_eq!(pc["sfu"], false);
    assert_eq!(s[find(&s, 0, 0, Out, "offer").unwrap()].json["playerId"], pid.as_str());
    assert_eq!(s[find(&s, 0, 0, In, "answer").unwrap()].json["playerId"], pid.as_str());
    // Across the two connections: subscribe before playerConnected before the
    // streamer's offer before the player receives it.
    let at = |log: &[Recorded], dir, t| log[find(log, 0, 0, dir, t).unwrap()].at;
    assert!(at(&p, Out, "subscribe") <= at(&s, In, "playerConnected"));
    assert!(at(&s, Out, "offer") <= at(&p, In, "offer"));
    assert!(at(&p, Out, "answer") <= at(&s, In, "answer"));
    // Media flows after the negotiation.
    let frames = || player.live.frames.load(std::sync::atomic::Ordering::Relaxed);
    until("video frames", WAIT, || frames() >= 30).await;

    // opt: the player leaves → the streamer gets playerDisconnected.
    cancel.cancel();
    let stats = player.task.await.unwrap();
    assert!(stats.video_frames >= 30, "{stats:?}");
    streamer_tap.wait_for("playerDisconnected", WAIT, |l| find(l, 0, 0, In, "playerDisconnected").is_some()).await;

    // opt: the streamer leaves → a subscribed player gets streamerDisconnected.
    let cancel2 = CancellationToken::new();
    let config = player_config(&PlayerGroup { reconnect: false, ..PlayerGroup::default() }, &player_tap.url())
        .expect("a clean group");
    let rtc = mock_player::rtc::RtcContext::new(true).unwrap();
    let second = RunningPlayer::spawn(1, std::sync::Arc::new(config), Some(rtc), cancel2.clone());
    until("second player streaming", WAIT, || second.streaming()).await;
    streamer.stop().await;
    player_tap.wait_for("streamerDisconnected", WAIT, |l| find(l, 0, 1, In, "streamerDisconnected").is_some()).await;
    cancel2.cancel();
    let _ = second.task.await;
    server.shutdown().await;
}

/// 3: fifty players on one streamer, all streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_players_on_one_streamer_all_stream() {
    let _serial = SERIAL.lock().await;
    let topology = Topology {
        streamers: vec![small_streamer("DefaultStreamer")],
        players: vec![PlayerGroup { count: 50, ..PlayerGroup::default() }],
        ..Topology::default()
    };
    let running = topology.start().await.unwrap();
    until("50 players streaming", Duration::from_secs(60), || running.players_streaming() == 50).await;
    // Every player keeps receiving: frames grow for each of them.
    let before: Vec<u64> =
        running.players.iter().map(|p| p.live.frames.load(std::sync::atomic::Ordering::Relaxed)).collect();
    until("every player received more frames", WAIT, || {
        running
            .players
            .iter()
            .zip(&before)
            .all(|(p, b)| p.live.frames.load(std::sync::atomic::Ordering::Relaxed) > b + 10)
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(stats.len(), 50);
    assert!(stats.iter().all(|s| s.joined && s.video_frames > 10), "some player did not stream");
}

/// 4: two streamers, players split between them; each player gets its
/// streamer's stream (and only that one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_streamers_each_player_gets_the_right_stream() {
    let _serial = SERIAL.lock().await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/two-streamers.toml");
    let topology = Topology::load(&path).unwrap();
    let running = topology.start().await.unwrap();
    until("5 players streaming", WAIT, || running.players_streaming() == 5).await;
    let snapshot = running.server.snapshot();
    let subscribers = |id: &str| -> Vec<String> {
        snapshot
            .streamers
            .iter()
            .find(|s| s.streamer_id == id)
            .unwrap()
            .subscribers
            .iter()
            .map(|p| p.player_id.clone())
            .collect()
    };
    let (alpha, beta) = (subscribers("Alpha"), subscribers("Beta"));
    assert_eq!((alpha.len(), beta.len()), (3, 2));
    // Each streamer sends frames to exactly its own subscribers.
    for (handle, expected) in running.streamers.iter().zip([&alpha, &beta]) {
        let stats = handle.stats();
        let mut served: Vec<String> =
            stats.streamers[0].players.iter().filter(|p| p.frames_sent > 0).map(|p| p.player_id.clone()).collect();
        served.sort();
        let mut expected = expected.clone();
        expected.sort();
        assert_eq!(served, expected);
    }
    let stats = running.stop().await;
    for s in &stats {
        let id = s.player_id.clone().unwrap_or_default();
        let want = if alpha.contains(&id) { "Alpha" } else { "Beta" };
        assert_eq!(s.streamer_id.as_deref(), Some(want), "{id}");
        assert!(s.video_frames > 0);
    }
}

/// 6: the streamer crashes and comes back under the same id; players with
/// reconnect rejoin and stream again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamer_restart_players_reconnect() {
    let _serial = SERIAL.lock().await;
    let topology = Topology {
        streamers: vec![small_streamer("DefaultStreamer")],
        players: vec![PlayerGroup { count: 3, reconnect: true, ..PlayerGroup::default() }],
        ..Topology::default()
    };
    let mut running = topology.start().await.unwrap();
    until("3 players streaming", WAIT, || running.players_streaming() == 3).await;
    let url = format!("ws://{}", running.server.streamer_addr());
    let old = running.streamers.remove(0);
    old.stop().await;
    until("players notice", WAIT, || running.players_streaming() == 0).await;
    running
        .streamers
        .push(mock_streamer::spawn(streamer_config(&small_streamer("DefaultStreamer"), &url).unwrap()).unwrap());
    until("3 players streaming again", WAIT, || running.players_streaming() == 3).await;
    let stats = running.stop().await;
    assert!(stats.iter().all(|s| s.reconnects >= 1 && !s.rejoins.is_empty()), "{stats:#?}");
}

/// 5: streamer → SFU → players, with simulcast and the data-channel relay:
/// the streamer encodes once and has one peer connection (to the SFU); each
/// player gets the layer it asked for; input from a player reaches the
/// streamer and the streamer's responses come back to that player only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfu_path_with_simulcast_and_data_channel_relay() {
    let _serial = SERIAL.lock().await;
    let topology = Topology {
        streamers: vec![StreamerSpec {
            simulcast: true,
            respond: true,
            width: 640,
            height: 480,
            bitrate: 1_200_000,
            ..small_streamer("DefaultStreamer")
        }],
        sfu: Some(e2e::topology::SfuSpec { streamer: Some("DefaultStreamer".into()), ..Default::default() }),
        players: vec![
            // Low layer, sending input (UIInteractions get a Response).
            PlayerGroup {
                streamer: Some("SFU".into()),
                count: 2,
                layer: Some((0, 0)),
                input_rate: 10.0,
                ..Default::default()
            },
            // High layer, silent.
            PlayerGroup { streamer: Some("SFU".into()), count: 2, layer: Some((2, 0)), ..Default::default() },
        ],
        ..Topology::default()
    };
    let running = topology.start().await.unwrap();
    until("4 players streaming through the SFU", Duration::from_secs(60), || running.players_streaming() == 4).await;
    // Let input and responses flow for a moment, measured by the streamer.
    until("input from both low-layer players", WAIT, || {
        let s = running.streamers[0].stats();
        s.streamers[0].input_counts.get("UIInteraction").copied().unwrap_or(0) >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a measurement window for bitrates

    let snapshot = running.server.snapshot();
    let streamer = snapshot.streamers.iter().find(|s| s.streamer_id == "DefaultStreamer").unwrap();
    assert_eq!(streamer.subscribers.len(), 1, "only the SFU subscribes to the streamer");
    assert_eq!(streamer.subscribers[0].kind, signalling::snapshot::SubscriberKind::Sfu);
    let sfu_entry = snapshot.streamers.iter().find(|s| s.streamer_id == "SFU").unwrap();
    assert_eq!(sfu_entry.subscribers.len(), 4);
    let streamer_stats = running.streamers[0].stats();
    assert_eq!(streamer_stats.streamers[0].players_connected_total, 1, "one peer connection, however many watch");

    let stats = running.stop().await;
    let (low, high): (Vec<_>, Vec<_>) = stats.iter().partition(|s| s.index < 2);
    for s in &stats {
        assert!(s.sfu && s.video_frames > 30, "player {} through the SFU: {s:?}", s.index);
        assert!(s.dc.protocol_received, "player {} never got Protocol through the relay", s.index);
    }
    // Responses come back to the players that sent UIInteractions, and only to them.
    for s in &low {
        assert!(s.dc.received.get("Response").copied().unwrap_or(0) > 0, "player {} got no Response", s.index);
    }
    for s in &high {
        assert_eq!(s.dc.received.get("Response"), None, "player {} got someone else's Response", s.index);
    }
    // Each player got the layer it asked for: the picture size from the SPS
    // in the bitstream it received (layer 0 = quarter size, 2 = full).
    let size = |s: &mock_player::PlayerStats| {
        let video = s.tracks.iter().rev().find(|t| t.kind == "video").expect("a video track");
        (video.width, video.height)
    };
    for s in &low {
        assert_eq!(size(s), (160, 120), "player {} (layer 0)", s.index);
    }
    for s in &high {
        assert_eq!(size(s), (640, 480), "player {} (layer 2)", s.index);
    }
}
