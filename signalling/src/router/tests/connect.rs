//! On connect (`signalling.md` §2): `config`, then `identify` or `playerCount`.

use super::*;

#[test]
fn connect_streamer_and_sfu_get_config_then_identify() {
    let peer = json!({"iceServers": [{"urls": ["stun:stun.example.org:19302"]}]});
    let mut h =
        Harness::with(RouterOptions { peer_options: peer.as_object().unwrap().clone(), ..RouterOptions::default() });
    for role in [Role::Streamer, Role::Sfu] {
        let (conn, got) = h.connect_greeted(role);
        assert_eq!(got, vec![to(conn, config_of(peer.clone())), to(conn, json!({"type": "identify"}))]);
    }
}

#[test]
fn connect_config_defaults_to_empty_peer_connection_options() {
    let mut h = Harness::new();
    let (conn, got) = h.connect_greeted(Role::Streamer);
    assert_eq!(
        got[0],
        Out::Send(conn, r#"{"type":"config","peerConnectionOptions":{},"protocolVersion":"1.3.0"}"#.into())
    );
}

#[test]
fn connect_player_gets_config_then_player_count_of_players_only() {
    let mut h = Harness::new();
    h.connect(Role::Sfu);
    h.connect(Role::Streamer);
    let (p1, got) = h.connect_greeted(Role::Player);
    assert_eq!(got, vec![to(p1, config_of(json!({}))), to(p1, json!({"type": "playerCount", "count": 1}))]);
    h.connect(Role::Sfu);
    let (p2, got) = h.connect_greeted(Role::Player);
    assert_eq!(got, vec![to(p2, config_of(json!({}))), to(p2, json!({"type": "playerCount", "count": 2}))]);
    h.disconnect(p1);
    let (p3, got) = h.connect_greeted(Role::Player);
    assert_eq!(got[1], to(p3, json!({"type": "playerCount", "count": 2})));
}

#[test]
fn connect_player_without_player_count_option_gets_only_config() {
    let mut h = Harness::with(RouterOptions { send_player_count: false, ..RouterOptions::default() });
    let (p, got) = h.connect_greeted(Role::Player);
    assert_eq!(got, vec![to(p, config_of(json!({})))]);
}

#[test]
fn connect_default_router_greets_with_a_real_config() {
    let mut router = Router::default();
    let (conn, actions) = router.connect(Role::Player, "x".into());
    assert_eq!(
        outs(actions),
        vec![to(conn, config_of(json!({}))), to(conn, json!({"type": "playerCount", "count": 1}))]
    );
}
