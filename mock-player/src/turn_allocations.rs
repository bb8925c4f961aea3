//! Why a TURN server refused us, read off the wire.
//!
//! webrtc-rs 0.21 only logs a refused TURN allocation and then finishes
//! gathering without a relay candidate: a relay-only player would wait for
//! its join timeout and report "ICE". The player's sockets ([`crate::udp_path`])
//! show this watcher every datagram: it notes the transaction ids of the
//! Allocate requests that carried credentials (the first, unauthenticated
//! one is always answered 401 with a nonce) and reads the error code of an
//! Allocate error response to one of them. Sans-I/O; STUN per RFC 5389/8489,
//! TURN per RFC 8656.

/// STUN's magic cookie (bytes 4..8 of every STUN message).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ALLOCATE_REQUEST: u16 = 0x0003;
const ALLOCATE_ERROR_RESPONSE: u16 = 0x0113;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_ERROR_CODE: u16 = 0x0009;

/// A STUN message: type, transaction id, attributes (type, value).
type StunMessage<'a> = (u16, [u8; 12], Vec<(u16, &'a [u8])>);

/// A STUN message's parts; `None` if `data` is not one.
fn stun(data: &[u8]) -> Option<StunMessage<'_>> {
    if data.len() < 20 || data[0] & 0xC0 != 0 || data[4..8] != MAGIC_COOKIE {
        return None;
    }
    let typ = u16::from_be_bytes([data[0], data[1]]);
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + len)?;
    let tid: [u8; 12] = data[8..20].try_into().ok()?;
    let mut attrs = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let l = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let Some(value) = rest.get(4..4 + l) else { break };
        attrs.push((t, value));
        rest = rest.get(4 + l.div_ceil(4) * 4..).unwrap_or_default();
    }
    Some((typ, tid, attrs))
}

/// The Allocate requests with credentials in flight, and the first refusal.
#[derive(Debug, Default)]
pub struct TurnAllocations {
    authenticated: Vec<[u8; 12]>,
    refusal: Option<String>,
}

impl TurnAllocations {
    /// A datagram we sent.
    pub fn on_sent(&mut self, data: &[u8]) {
        let Some((typ, tid, attrs)) = stun(data) else { return };
        if typ == ALLOCATE_REQUEST && attrs.iter().any(|(t, _)| *t == ATTR_USERNAME) {
            if self.authenticated.len() >= 16 {
                self.authenticated.remove(0);
            }
            self.authenticated.push(tid);
        }
    }

    /// A datagram we received.
    pub fn on_received(&mut self, data: &[u8]) {
        let Some((typ, tid, attrs)) = stun(data) else { return };
        if typ != ALLOCATE_ERROR_RESPONSE || !self.authenticated.contains(&tid) || self.refusal.is_some() {
            return;
        }
        let reason = match attrs.iter().find(|(t, _)| *t == ATTR_ERROR_CODE) {
            Some((_, v)) if v.len() >= 4 => {
                let code = u16::from(v[2] & 0x07) * 100 + u16::from(v[3]);
                let phrase = String::from_utf8_lossy(&v[4..]).trim().to_string();
                if phrase.is_empty() {
                    format!("{code}")
                } else {
                    format!("{code} {phrase}")
                }
            }
            _ => "no error code".to_string(),
        };
        self.refusal = Some(format!("TURN allocation refused: {reason}"));
    }

    /// "TURN allocation refused: 401 Unauthorized", once a server refused
    /// our credentials.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(typ: u16, tid: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = typ.to_be_bytes().to_vec();
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[tid; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn the_nonce_challenge_is_not_a_refusal_but_a_second_401_is() {
        let mut t = TurnAllocations::default();
        let unauthorized: &[u8] = &[0, 0, 4, 1, b'U', b'n', b'a', b'u', b't', b'h', b'o', b'r', b'i', b'z', b'e', b'd'];
        t.on_sent(&message(ALLOCATE_REQUEST, 1, &[]));
        t.on_received(&message(ALLOCATE_ERROR_RESPONSE, 1, &[(ATTR_ERROR_CODE, unauthorized)]));
        assert_eq!(t.refusal(), None, "the first 401 carries the nonce");
        t.on_sent(&message(ALLOCATE_REQUEST, 2, &[(ATTR_USERNAME, b"1700000000:p1")]));
        t.on_received(&message(ALLOCATE_ERROR_RESPONSE, 2, &[(ATTR_ERROR_CODE, unauthorized)]));
        assert_eq!(t.refusal(), Some("TURN allocation refused: 401 Unauthorized"));
    }

    #[test]
    fn ignores_what_is_not_stun() {
        let mut t = TurnAllocations::default();
        for junk in [&b""[..], &[0x80; 40][..], &[0u8; 19][..], &[0, 1, 0, 200, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0][..]]
        {
            t.on_sent(junk);
            t.on_received(junk);
        }
        assert_eq!(t.refusal(), None);
    }
}
