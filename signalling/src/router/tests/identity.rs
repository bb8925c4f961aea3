//! Streamer identity (§3): `endpointId`, generated and numbered ids.

use super::*;

#[test]
fn identity_streamer_unlisted_until_endpoint_id() {
    let mut h = Harness::new();
    let s = h.connect(Role::Streamer);
    let p = h.player();
    assert_eq!(h.list(p), json!([]));
    let temp = h.streamer_id(s);
    let got = h.send(p, json!({"type": "subscribe", "streamerId": temp}));
    assert_eq!(
        got,
        vec![to(p, json!({"type": "subscribeFailed", "message": format!("Streamer {temp} does not exist.")}))]
    );
    let got = h.send(s, json!({"type": "endpointId", "id": "A", "protocolVersion": "1.3.0"}));
    assert_eq!(got, vec![to(s, json!({"type": "endpointIdConfirm", "committedId": "A"}))]);
    assert_eq!(h.list(p), json!(["A"]));
}

#[test]
fn identity_collisions_get_numbered() {
    let mut h = Harness::new();
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let s = h.connect(Role::Streamer);
            let got = h.send(s, json!({"type": "endpointId", "id": "A"}));
            assert_eq!(got.len(), 1);
            h.streamer_id(s)
        })
        .collect();
    assert_eq!(ids, ["A", "A1", "A2"]);
    let p = h.player();
    assert_eq!(h.list(p), json!(["A", "A1", "A2"]));
}

#[test]
fn identity_resending_own_id_keeps_it_fix() {
    let mut h = Harness::new();
    let a = h.streamer("A");
    let a1 = h.connect(Role::Streamer);
    assert_eq!(
        h.send(a1, json!({"type": "endpointId", "id": "A"})),
        vec![to(a1, json!({"type": "endpointIdConfirm", "committedId": "A1"}))]
    );
    // Same connection, same id: kept, no rename.
    assert_eq!(
        h.send(a, json!({"type": "endpointId", "id": "A"})),
        vec![to(a, json!({"type": "endpointIdConfirm", "committedId": "A"}))]
    );
    // The holder of A1 asking again for A keeps A1 (it already holds a variant).
    let p = h.subscriber(a1);
    assert_eq!(
        h.send(a1, json!({"type": "endpointId", "id": "A"})),
        vec![to(a1, json!({"type": "endpointIdConfirm", "committedId": "A1"}))]
    );
    assert_eq!(
        h.send(a1, json!({"type": "endpointId", "id": "A1"})),
        vec![to(a1, json!({"type": "endpointIdConfirm", "committedId": "A1"}))]
    );
    assert_eq!(h.list(p), json!(["A", "A1"]));
}

#[test]
fn identity_never_hands_out_a_duplicate() {
    let mut h = Harness::new();
    // Wilbur lets two B5s coexist: B, B1, …, then someone asks for "B5" and
    // another gets B5 by numbering. Ours never does.
    let mut conns = Vec::new();
    for requested in ["B", "B", "B", "B", "B", "B5", "B", "B5", "B51", ""] {
        let s = h.connect(Role::Streamer);
        h.send(s, json!({"type": "endpointId", "id": requested}));
        conns.push(s);
    }
    let p = h.player();
    let ids = h.list(p);
    let ids: Vec<&str> = ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 10);
    assert_eq!(unique.len(), 10, "duplicate ids: {ids:?}");
    assert_eq!(&ids[..5], ["B", "B1", "B2", "B3", "B4"]);
    assert_eq!(ids[5], "B5");
    assert_eq!(ids[6], "B6");
}

#[test]
fn identity_empty_or_missing_id_gets_a_generated_one() {
    let mut h = Harness::new();
    let mut got_ids = Vec::new();
    for message in [
        json!({"type": "endpointId"}),
        json!({"type": "endpointId", "id": ""}),
        json!({"type": "endpointId", "id": null}),
        json!({"type": "endpointId", "id": "   "}),
    ] {
        let s = h.connect(Role::Streamer);
        let got = h.send(s, message);
        let id = h.streamer_id(s);
        assert!(!id.trim().is_empty());
        assert_eq!(got, vec![to(s, json!({"type": "endpointIdConfirm", "committedId": id}))]);
        got_ids.push(id);
    }
    let p = h.player();
    assert_eq!(h.list(p), json!(got_ids));
}

#[test]
fn identity_change_tells_subscribers_before_confirm() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p1 = h.player();
    let sfu = h.identified(Role::Sfu, "SFU");
    let p2 = h.player();
    h.subscribed(p1, s);
    h.subscribed(sfu, s);
    h.subscribed(p2, s);
    let got = h.send(s, json!({"type": "endpointId", "id": "B"}));
    assert_eq!(
        got,
        vec![
            to(p1, json!({"type": "streamerIdChanged", "newID": "B"})),
            to(sfu, json!({"type": "streamerIdChanged", "newID": "B"})),
            to(p2, json!({"type": "streamerIdChanged", "newID": "B"})),
            to(s, json!({"type": "endpointIdConfirm", "committedId": "B"})),
        ]
    );
    let q = h.player();
    assert_eq!(h.list(q), json!(["B"]));
    // The old id is free again.
    h.streamer("A");
}

#[test]
fn identity_re_requesting_a_taken_id_keeps_the_numbered_one_it_holds() {
    let mut h = Harness::new();
    h.streamer("A");
    let a1 = h.connect(Role::Streamer);
    h.send(a1, json!({"type": "endpointId", "id": "A"}));
    let a2 = h.connect(Role::Streamer);
    h.send(a2, json!({"type": "endpointId", "id": "A"}));
    assert_eq!(h.streamer_id(a2), "A2");
    // A1 goes away; A2 asks for A again and keeps A2 rather than moving to A1.
    h.disconnect(a1);
    let got = h.send(a2, json!({"type": "endpointId", "id": "A"}));
    assert_eq!(got, vec![to(a2, json!({"type": "endpointIdConfirm", "committedId": "A2"}))]);
}
