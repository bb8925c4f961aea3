//! Unit tests of the data-channel codec: round trips, byte-exact vectors,
//! malformed input, the Protocol table, and no panics on any input.

use super::*;
use proptest::prelude::*;
use serde_json::Value;

fn touch(i: u8) -> Touch {
    Touch { x: 100 * u16::from(i), y: 65535 - u16::from(i), id: i, force: 128, valid: i & 1 == 0 }
}

fn all_to_streamer() -> Vec<ToStreamer> {
    use ToStreamer::*;
    vec![
        IFrameRequest,
        RequestQualityControl,
        FpsRequest,
        AverageBitrateRequest,
        StartStreaming,
        StopStreaming,
        LatencyTest(r#"{"StartTime":1700000000000}"#.into()),
        RequestInitialSettings,
        TestEcho("echo ü".into()),
        DataChannelLatencyTest(r#"{"Seq":1,"FillResponseSize":0,"Filler":""}"#.into()),
        UIInteraction(r#"{"action":"go"}"#.into()),
        Command(r#"{"Resolution.Width":800,"Resolution.Height":600}"#.into()),
        TextboxEntry("héllo 😀".into()),
        KeyDown { key_code: 65, is_repeat: true },
        KeyUp { key_code: 65 },
        KeyPress { char_code: 0x20AC },
        MouseEnter,
        MouseLeave,
        MouseDown { button: 2, x: 1, y: 65535 },
        MouseUp { button: 0, x: 32768, y: 0 },
        MouseMove { x: 10, y: 20, delta_x: -5, delta_y: 300 },
        MouseWheel { delta: -120, x: 5, y: 6 },
        MouseDouble { button: 1, x: 7, y: 8 },
        TouchStart(vec![touch(1)]),
        TouchEnd(vec![touch(1), touch(2)]),
        TouchMove(vec![]),
        GamepadButtonPressed { controller: 1, button: 3, is_repeat: false },
        GamepadButtonReleased { controller: 1, button: 3, is_repeat: true },
        GamepadAnalog { controller: 0, axis: 2, value: -0.25 },
        GamepadConnected,
        GamepadDisconnected { controller: 3 },
    ]
}

fn all_to_player() -> Vec<ToPlayer> {
    use ToPlayer::*;
    vec![
        QualityControlOwnership(true),
        Response("ok".into()),
        Command(r#"{"command":"onScreenKeyboard"}"#.into()),
        FreezeFrame { total_size: 4, jpeg: vec![0xff, 0xd8, 0xff, 0xd9] },
        UnfreezeFrame,
        VideoEncoderAvgQP("27.5".into()),
        LatencyTest(r#"{"ReceiptTimeMs":1}"#.into()),
        InitialSettings(r#"{"PixelStreaming":{}}"#.into()),
        FileExtension(".txt".into()),
        FileMimeType("text/plain".into()),
        FileContents { total_size: 10, data: vec![1, 2, 3] },
        TestEcho("echo".into()),
        InputControlOwnership(false),
        GamepadResponse(r#"{"controllerId":0}"#.into()),
        DataChannelLatencyTest(r#"{"Seq":1}"#.into()),
        ToPlayer::protocol(),
    ]
}

/// Every id of a table is covered exactly once, and every message decodes
/// back from its own bytes.
fn assert_round_trips<M: PartialEq + std::fmt::Debug>(
    msgs: Vec<M>,
    table_ids: impl Iterator<Item = u8>,
    id: impl Fn(&M) -> u8,
    encode: impl Fn(&M) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<M, DataChannelError>,
) {
    let mut ids: Vec<u8> = msgs.iter().map(&id).collect();
    ids.sort_unstable();
    let mut table: Vec<u8> = table_ids.collect();
    table.sort_unstable();
    assert_eq!(ids, table);
    for m in msgs {
        let bytes = encode(&m);
        assert_eq!(bytes[0], id(&m));
        assert_eq!(decode(&bytes), Ok(m));
    }
}

#[test]
fn every_to_streamer_id_round_trips() {
    let table = TO_STREAMER_PROTOCOL.iter().map(|e| e.1);
    assert_round_trips(all_to_streamer(), table, ToStreamer::id, ToStreamer::encode, ToStreamer::decode);
}

#[test]
fn every_to_player_id_round_trips() {
    let table = TO_PLAYER_IDS.iter().map(|e| e.1);
    assert_round_trips(all_to_player(), table, ToPlayer::id, ToPlayer::encode, ToPlayer::decode);
}

#[test]
fn byte_exact_vectors() {
    assert_eq!(ToStreamer::MouseDown { button: 1, x: 0x1234, y: 0xABCD }.encode(), vec![72, 1, 0x34, 0x12, 0xCD, 0xAB]);
    assert_eq!(ToStreamer::KeyDown { key_code: 65, is_repeat: false }.encode(), vec![60, 65, 0]);
    assert_eq!(
        ToStreamer::MouseMove { x: 1, y: 2, delta_x: -1, delta_y: 256 }.encode(),
        vec![74, 1, 0, 2, 0, 0xFF, 0xFF, 0, 1]
    );
    // UIInteraction: id, u16 unit count, UTF-16LE.
    assert_eq!(ToStreamer::UIInteraction("hi€".into()).encode(), vec![50, 3, 0, b'h', 0, b'i', 0, 0xAC, 0x20]);
    // Streamer → player strings: raw UTF-16LE, no prefix.
    assert_eq!(ToPlayer::Response("ok".into()).encode(), vec![1, b'o', 0, b'k', 0]);
    assert_eq!(ToPlayer::QualityControlOwnership(true).encode(), vec![0, 1]);
    assert_eq!(ToPlayer::freeze_frame(vec![9, 8]).encode(), vec![3, 2, 0, 0, 0, 9, 8]);
    // Astral characters take two code units and count as two.
    assert_eq!(ToStreamer::TextboxEntry("😀".into()).encode(), vec![52, 2, 0, 0x3D, 0xD8, 0x00, 0xDE]);
}

#[test]
fn bad_input_is_an_error() {
    assert_eq!(ToStreamer::decode(&[]), Err(DataChannelError::Empty));
    assert_eq!(ToPlayer::decode(&[]), Err(DataChannelError::Empty));
    assert_eq!(ToStreamer::decode(&[200]), Err(DataChannelError::UnknownId(200)));
    assert_eq!(ToPlayer::decode(&[100]), Err(DataChannelError::UnknownId(100)));
    assert!(matches!(ToStreamer::decode(&[72, 1, 2]), Err(DataChannelError::Truncated { .. })));
    assert!(matches!(ToStreamer::decode(&[61, 1, 2]), Err(DataChannelError::TrailingBytes { .. })));
    // Count says 5 units, only 1 present.
    assert!(matches!(ToStreamer::decode(&[50, 5, 0, b'a', 0]), Err(DataChannelError::Truncated { .. })));
    assert!(matches!(ToPlayer::decode(&[1, b'a']), Err(DataChannelError::OddUtf16Length { .. })));
    // Lone high surrogate.
    assert!(matches!(ToPlayer::decode(&[1, 0x00, 0xD8]), Err(DataChannelError::InvalidUtf16 { .. })));
    assert!(matches!(ToStreamer::decode(&[80, 2, 0, 0, 0, 0, 1, 1, 1]), Err(DataChannelError::Truncated { .. })));
    // TestEcho with no payload, as the default frontend table sends it.
    assert_eq!(ToStreamer::decode(&[8]), Ok(ToStreamer::TestEcho(String::new())));
}

#[test]
fn protocol_table_lists_every_player_message() {
    let v: Value = serde_json::from_str(&to_streamer_protocol_json()).unwrap();
    assert_eq!(v["Direction"], 0);
    assert_eq!(v["MouseDown"]["id"], 72);
    assert_eq!(v["MouseDown"]["structure"], serde_json::json!(["uint8", "uint16", "uint16"]));
    assert_eq!(v["UIInteraction"]["structure"], serde_json::json!(["string"]));
    assert_eq!(v.as_object().unwrap().len(), TO_STREAMER_PROTOCOL.len() + 1);
    // The first key is Direction, as UE sends it.
    assert!(to_streamer_protocol_json().starts_with(r#"{"Direction":0,"#));
}

#[test]
fn display_is_readable() {
    let m = ToStreamer::MouseDown { button: 0, x: 33423, y: 14418 };
    assert_eq!(m.to_string(), "MouseDown button=0 x=0.51 y=0.22");
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = ToStreamer::decode(&bytes);
        let _ = ToPlayer::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_known_ids(id in prop::sample::select(vec![0u8,1,3,6,8,9,10,50,60,72,74,80,92,94,255]),
                                         rest in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut bytes = vec![id];
        bytes.extend(rest);
        if let Ok(m) = ToStreamer::decode(&bytes) {
            // Whatever decodes re-encodes to a message that decodes the same.
            // (Compared as bytes: a NaN axis value is not equal to itself.)
            let again = ToStreamer::decode(&m.encode()).map(|m| m.encode());
            prop_assert_eq!(again, Ok(m.encode()));
        }
        if let Ok(m) = ToPlayer::decode(&bytes) {
            prop_assert_eq!(ToPlayer::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn strings_round_trip(s in ".{0,50}") {
        let m = ToStreamer::UIInteraction(s.clone());
        prop_assert_eq!(ToStreamer::decode(&m.encode()), Ok(m));
        let p = ToPlayer::Response(s);
        prop_assert_eq!(ToPlayer::decode(&p.encode()), Ok(p));
    }
}
