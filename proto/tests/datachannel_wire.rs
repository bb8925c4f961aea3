//! Golden wire vectors for the data channel: one message per id in each
//! direction, with the exact bytes, log line and `Protocol` JSON the codec
//! produced before its tables were written once. A change to any of them is a
//! change on the wire.

use std::collections::BTreeSet;
use std::fmt;

use proto::datachannel::{
    to_player_name, to_streamer_name, to_streamer_protocol_json, DataChannelError, ToPlayer, ToStreamer, Touch,
    TO_PLAYER_IDS, TO_STREAMER_PROTOCOL,
};

fn touch(i: u8) -> Touch {
    Touch { x: 100 * u16::from(i), y: 65535 - u16::from(i), id: i, force: 128, valid: i & 1 == 0 }
}

/// Message, its bytes, its `Display` form.
fn to_streamer_vectors() -> Vec<(ToStreamer, &'static [u8], &'static str)> {
    use ToStreamer::*;
    vec![
        (IFrameRequest, &[0], "IFrameRequest"),
        (RequestQualityControl, &[1], "RequestQualityControl"),
        (FpsRequest, &[2], "FpsRequest"),
        (AverageBitrateRequest, &[3], "AverageBitrateRequest"),
        (StartStreaming, &[4], "StartStreaming"),
        (StopStreaming, &[5], "StopStreaming"),
        (
            LatencyTest(r#"{"StartTime":1}"#.into()),
            &[
                6, 15, 0, 123, 0, 34, 0, 83, 0, 116, 0, 97, 0, 114, 0, 116, 0, 84, 0, 105, 0, 109, 0, 101, 0, 34, 0,
                58, 0, 49, 0, 125, 0,
            ],
            r#"LatencyTest "{\"StartTime\":1}""#,
        ),
        (RequestInitialSettings, &[7], "RequestInitialSettings"),
        (TestEcho("echo ü".into()), &[8, 6, 0, 101, 0, 99, 0, 104, 0, 111, 0, 32, 0, 252, 0], r#"TestEcho "echo ü""#),
        (
            DataChannelLatencyTest(r#"{"Seq":1}"#.into()),
            &[9, 9, 0, 123, 0, 34, 0, 83, 0, 101, 0, 113, 0, 34, 0, 58, 0, 49, 0, 125, 0],
            r#"DataChannelLatencyTest "{\"Seq\":1}""#,
        ),
        (
            UIInteraction(r#"{"a":1}"#.into()),
            &[50, 7, 0, 123, 0, 34, 0, 97, 0, 34, 0, 58, 0, 49, 0, 125, 0],
            r#"UIInteraction "{\"a\":1}""#,
        ),
        (
            Command(r#"{"b":2}"#.into()),
            &[51, 7, 0, 123, 0, 34, 0, 98, 0, 34, 0, 58, 0, 50, 0, 125, 0],
            r#"Command "{\"b\":2}""#,
        ),
        (TextboxEntry("é😀".into()), &[52, 3, 0, 233, 0, 61, 216, 0, 222], r#"TextboxEntry "é😀""#),
        (KeyDown { key_code: 65, is_repeat: true }, &[60, 65, 1], "KeyDown key_code=65 repeat=true"),
        (KeyUp { key_code: 65 }, &[61, 65], "KeyUp key_code=65"),
        (KeyPress { char_code: 0x20AC }, &[62, 172, 32], "KeyPress char_code=8364 ('€')"),
        (MouseEnter, &[70], "MouseEnter"),
        (MouseLeave, &[71], "MouseLeave"),
        (MouseDown { button: 2, x: 1, y: 65535 }, &[72, 2, 1, 0, 255, 255], "MouseDown button=2 x=0.00 y=1.00"),
        (MouseUp { button: 0, x: 32768, y: 0 }, &[73, 0, 0, 128, 0, 0], "MouseUp button=0 x=0.50 y=0.00"),
        (
            MouseMove { x: 10, y: 20, delta_x: -5, delta_y: 300 },
            &[74, 10, 0, 20, 0, 251, 255, 44, 1],
            "MouseMove x=0.00 y=0.00 dx=-5 dy=300",
        ),
        (MouseWheel { delta: -120, x: 5, y: 6 }, &[75, 136, 255, 5, 0, 6, 0], "MouseWheel delta=-120 x=0.00 y=0.00"),
        (MouseDouble { button: 1, x: 7, y: 8 }, &[76, 1, 7, 0, 8, 0], "MouseDouble button=1 x=0.00 y=0.00"),
        (
            TouchStart(vec![touch(1)]),
            &[80, 1, 100, 0, 254, 255, 1, 128, 0],
            "TouchStart touches=1 [id=1 x=0.00 y=1.00 force=128 valid=false]",
        ),
        (
            TouchEnd(vec![touch(1), touch(2)]),
            &[81, 2, 100, 0, 254, 255, 1, 128, 0, 200, 0, 253, 255, 2, 128, 1],
            "TouchEnd touches=2 [id=1 x=0.00 y=1.00 force=128 valid=false] [id=2 x=0.00 y=1.00 force=128 valid=true]",
        ),
        (TouchMove(vec![]), &[82, 0], "TouchMove touches=0"),
        (
            GamepadButtonPressed { controller: 1, button: 3, is_repeat: false },
            &[90, 1, 3, 0],
            "GamepadButtonPressed controller=1 button=3 repeat=false",
        ),
        (
            GamepadButtonReleased { controller: 1, button: 3, is_repeat: true },
            &[91, 1, 3, 1],
            "GamepadButtonReleased controller=1 button=3 repeat=true",
        ),
        (
            GamepadAnalog { controller: 0, axis: 2, value: -0.25 },
            &[92, 0, 2, 0, 0, 0, 0, 0, 0, 208, 191],
            "GamepadAnalog controller=0 axis=2 value=-0.250",
        ),
        (GamepadConnected, &[93], "GamepadConnected"),
        (GamepadDisconnected { controller: 3 }, &[94, 3], "GamepadDisconnected controller=3"),
    ]
}

fn to_player_vectors() -> Vec<(ToPlayer, &'static [u8], &'static str)> {
    use ToPlayer::*;
    vec![
        (QualityControlOwnership(true), &[0, 1], "QualityControlOwnership true"),
        (Response("ok".into()), &[1, 111, 0, 107, 0], r#"Response "ok""#),
        (
            Command(r#"{"c":0}"#.into()),
            &[2, 123, 0, 34, 0, 99, 0, 34, 0, 58, 0, 48, 0, 125, 0],
            r#"Command "{\"c\":0}""#,
        ),
        (
            FreezeFrame { total_size: 4, jpeg: vec![0xff, 0xd8, 0xff, 0xd9] },
            &[3, 4, 0, 0, 0, 255, 216, 255, 217],
            "FreezeFrame total_size=4 bytes=4",
        ),
        (UnfreezeFrame, &[4], "UnfreezeFrame"),
        (VideoEncoderAvgQP("27.5".into()), &[5, 50, 0, 55, 0, 46, 0, 53, 0], r#"VideoEncoderAvgQP "27.5""#),
        (
            LatencyTest(r#"{"R":1}"#.into()),
            &[6, 123, 0, 34, 0, 82, 0, 34, 0, 58, 0, 49, 0, 125, 0],
            r#"LatencyTest "{\"R\":1}""#,
        ),
        (
            InitialSettings(r#"{"P":{}}"#.into()),
            &[7, 123, 0, 34, 0, 80, 0, 34, 0, 58, 0, 123, 0, 125, 0, 125, 0],
            r#"InitialSettings "{\"P\":{}}""#,
        ),
        (FileExtension(".txt".into()), &[8, 46, 0, 116, 0, 120, 0, 116, 0], r#"FileExtension ".txt""#),
        (
            FileMimeType("text/plain".into()),
            &[9, 116, 0, 101, 0, 120, 0, 116, 0, 47, 0, 112, 0, 108, 0, 97, 0, 105, 0, 110, 0],
            r#"FileMimeType "text/plain""#,
        ),
        (
            FileContents { total_size: 10, data: vec![1, 2, 3] },
            &[10, 10, 0, 0, 0, 1, 2, 3],
            "FileContents total_size=10 bytes=3",
        ),
        (TestEcho("echo".into()), &[11, 101, 0, 99, 0, 104, 0, 111, 0], r#"TestEcho "echo""#),
        (InputControlOwnership(false), &[12, 0], "InputControlOwnership false"),
        (
            GamepadResponse(r#"{"g":0}"#.into()),
            &[13, 123, 0, 34, 0, 103, 0, 34, 0, 58, 0, 48, 0, 125, 0],
            r#"GamepadResponse "{\"g\":0}""#,
        ),
        (
            DataChannelLatencyTest(r#"{"Seq":1}"#.into()),
            &[14, 123, 0, 34, 0, 83, 0, 101, 0, 113, 0, 34, 0, 58, 0, 49, 0, 125, 0],
            r#"DataChannelLatencyTest "{\"Seq\":1}""#,
        ),
        (Protocol("{}".into()), &[255, 123, 0, 125, 0], r#"Protocol "{}""#),
    ]
}

/// The `Protocol` JSON as the codec wrote it by hand, keys in id order.
const PROTOCOL_JSON: &str = r#"{"Direction":0,"IFrameRequest":{"id":0,"structure":[]},"RequestQualityControl":{"id":1,"structure":[]},"FpsRequest":{"id":2,"structure":[]},"AverageBitrateRequest":{"id":3,"structure":[]},"StartStreaming":{"id":4,"structure":[]},"StopStreaming":{"id":5,"structure":[]},"LatencyTest":{"id":6,"structure":["string"]},"RequestInitialSettings":{"id":7,"structure":[]},"TestEcho":{"id":8,"structure":["string"]},"DataChannelLatencyTest":{"id":9,"structure":["string"]},"UIInteraction":{"id":50,"structure":["string"]},"Command":{"id":51,"structure":["string"]},"TextboxEntry":{"id":52,"structure":["string"]},"KeyDown":{"id":60,"structure":["uint8","uint8"]},"KeyUp":{"id":61,"structure":["uint8"]},"KeyPress":{"id":62,"structure":["uint16"]},"MouseEnter":{"id":70,"structure":[]},"MouseLeave":{"id":71,"structure":[]},"MouseDown":{"id":72,"structure":["uint8","uint16","uint16"]},"MouseUp":{"id":73,"structure":["uint8","uint16","uint16"]},"MouseMove":{"id":74,"structure":["uint16","uint16","int16","int16"]},"MouseWheel":{"id":75,"structure":["int16","uint16","uint16"]},"MouseDouble":{"id":76,"structure":["uint8","uint16","uint16"]},"TouchStart":{"id":80,"structure":["uint8","uint16","uint16","uint8","uint8","uint8"]},"TouchEnd":{"id":81,"structure":["uint8","uint16","uint16","uint8","uint8","uint8"]},"TouchMove":{"id":82,"structure":["uint8","uint16","uint16","uint8","uint8","uint8"]},"GamepadButtonPressed":{"id":90,"structure":["uint8","uint8","uint8"]},"GamepadButtonReleased":{"id":91,"structure":["uint8","uint8","uint8"]},"GamepadAnalog":{"id":92,"structure":["uint8","uint8","double"]},"GamepadConnected":{"id":93,"structure":[]},"GamepadDisconnected":{"id":94,"structure":["uint8"]}}"#;

/// One direction's codec, as plain functions, so both directions share one check.
struct Codec<M> {
    table_ids: Vec<u8>,
    id: fn(&M) -> u8,
    name: fn(&M) -> &'static str,
    name_of: fn(u8) -> Option<&'static str>,
    encode: fn(&M) -> Vec<u8>,
    decode: fn(&[u8]) -> Result<M, DataChannelError>,
}

/// One vector per id of the table, each encoding to its old bytes, decoding
/// back, and logging as before.
fn check<M: PartialEq + fmt::Debug + fmt::Display>(codec: Codec<M>, vectors: Vec<(M, &[u8], &str)>) {
    let ids: BTreeSet<u8> = vectors.iter().map(|(m, _, _)| (codec.id)(m)).collect();
    assert_eq!(ids, codec.table_ids.iter().copied().collect(), "one vector per id of the table");
    assert_eq!(ids.len(), vectors.len(), "no id twice");
    for (message, bytes, display) in vectors {
        assert_eq!((codec.encode)(&message), bytes, "{message:?}");
        assert_eq!((codec.decode)(bytes).as_ref(), Ok(&message), "{message:?}");
        assert_eq!(message.to_string(), display);
        assert_eq!(Some((codec.name)(&message)), (codec.name_of)(bytes[0]));
        assert!(display.starts_with((codec.name)(&message)));
    }
}

#[test]
fn every_to_streamer_id_has_its_old_bytes_and_round_trips() {
    let codec = Codec {
        table_ids: TO_STREAMER_PROTOCOL.iter().map(|(_, id, _)| *id).collect(),
        id: ToStreamer::id,
        name: ToStreamer::name,
        name_of: to_streamer_name,
        encode: ToStreamer::encode,
        decode: ToStreamer::decode,
    };
    check(codec, to_streamer_vectors());
}

#[test]
fn every_to_player_id_has_its_old_bytes_and_round_trips() {
    let codec = Codec {
        table_ids: TO_PLAYER_IDS.iter().map(|(_, id)| *id).collect(),
        id: ToPlayer::id,
        name: ToPlayer::name,
        name_of: to_player_name,
        encode: ToPlayer::encode,
        decode: ToPlayer::decode,
    };
    check(codec, to_player_vectors());
}

#[test]
fn protocol_json_is_unchanged() {
    assert_eq!(to_streamer_protocol_json(), PROTOCOL_JSON);
    let mut expected = vec![255u8];
    for unit in PROTOCOL_JSON.encode_utf16() {
        expected.extend_from_slice(&unit.to_le_bytes());
    }
    assert_eq!(ToPlayer::protocol().encode(), expected);
}

#[test]
fn protocol_json_lists_exactly_the_table() {
    let value: serde_json::Value = serde_json::from_str(&to_streamer_protocol_json()).unwrap();
    let object = value.as_object().unwrap();
    assert_eq!(object.len(), TO_STREAMER_PROTOCOL.len() + 1, "Direction plus one entry per message");
    assert_eq!(object["Direction"], 0);
    for (name, id, structure) in TO_STREAMER_PROTOCOL {
        assert_eq!(object[*name]["id"], *id, "{name}");
        assert_eq!(object[*name]["structure"], serde_json::json!(structure), "{name}");
        assert_eq!(to_streamer_name(*id), Some(*name));
    }
}
