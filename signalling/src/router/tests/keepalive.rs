//! Keepalive (§8), the router's part: `ping` gets `pong`.

use super::*;

#[test]
fn keepalive_ping_gets_pong_with_the_same_64_bit_time() {
    let mut h = Harness::new();
    for role in [Role::Player, Role::Streamer, Role::Sfu] {
        let c = h.connect(role);
        assert_eq!(
            h.send_text(c, r#"{"type":"ping","time":1732000000000}"#),
            vec![Out::Send(c, r#"{"type":"pong","time":1732000000000}"#.into())]
        );
        assert_eq!(h.send_text(c, r#"{"type":"ping"}"#), vec![Out::Send(c, r#"{"type":"pong","time":0}"#.into())]);
        // A pong from a peer is accepted silently.
        assert_eq!(h.send_text(c, r#"{"type":"pong","time":5}"#), vec![]);
    }
    assert_eq!(h.dropped(), 0);
}
