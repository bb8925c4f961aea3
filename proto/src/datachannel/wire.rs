//! Wire primitives shared by both directions: little-endian numbers, UTF-16LE
//! strings (with or without a `u16` count) and a bounds-checked [`Reader`]
//! that turns every short or malformed payload into a [`DataChannelError`].

use super::DataChannelError;

pub(super) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// u16 count + UTF-16LE. A string longer than 65535 code units is cut at
/// 65535 units (the wire format cannot say more).
pub(super) fn put_prefixed_string(out: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(u16::MAX as usize).collect();
    put_u16(out, units.len() as u16);
    for u in units {
        put_u16(out, u);
    }
}

/// Raw UTF-16LE, no prefix.
pub(super) fn put_raw_string(out: &mut Vec<u8>, s: &str) {
    for u in s.encode_utf16() {
        put_u16(out, u);
    }
}

/// Byte 0 (the id) and the payload after it.
pub(super) fn split_id(bytes: &[u8]) -> Result<(u8, &[u8]), DataChannelError> {
    match bytes.split_first() {
        Some((id, rest)) => Ok((*id, rest)),
        None => Err(DataChannelError::Empty),
    }
}

/// Reads one message's payload front to back; `name` labels its errors.
pub(super) struct Reader<'a> {
    name: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(name: &'static str, buf: &'a [u8]) -> Self {
        Reader { name, buf }
    }
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DataChannelError> {
        if self.buf.len() < n {
            return Err(DataChannelError::Truncated { name: self.name, needed: n, had: self.buf.len() });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(super) fn u8(&mut self) -> Result<u8, DataChannelError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn bool(&mut self) -> Result<bool, DataChannelError> {
        Ok(self.u8()? != 0)
    }
    pub(super) fn u16(&mut self) -> Result<u16, DataChannelError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(super) fn i16(&mut self) -> Result<i16, DataChannelError> {
        let b = self.take(2)?;
        Ok(i16::from_le_bytes([b[0], b[1]]))
    }
    pub(super) fn u32(&mut self) -> Result<u32, DataChannelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(super) fn f64(&mut self) -> Result<f64, DataChannelError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }
    fn utf16(&self, bytes: &[u8]) -> Result<String, DataChannelError> {
        if bytes.len() & 1 != 0 {
            return Err(DataChannelError::OddUtf16Length { name: self.name, len: bytes.len() });
        }
        let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        String::from_utf16(&units).map_err(|_| DataChannelError::InvalidUtf16 { name: self.name })
    }
    pub(super) fn prefixed_string(&mut self) -> Result<String, DataChannelError> {
        let count = self.u16()? as usize;
        let bytes = self.take(count * 2)?;
        self.utf16(bytes)
    }
    /// Everything left, as raw UTF-16LE.
    pub(super) fn raw_string(&mut self) -> Result<String, DataChannelError> {
        let bytes = std::mem::take(&mut self.buf);
        self.utf16(bytes)
    }
    /// Everything left, as bytes.
    pub(super) fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf).to_vec()
    }
    /// `value` if the whole payload was read, else [`DataChannelError::TrailingBytes`].
    pub(super) fn finish<T>(&self, value: T) -> Result<T, DataChannelError> {
        if self.buf.is_empty() {
            Ok(value)
        } else {
            Err(DataChannelError::TrailingBytes { name: self.name, extra: self.buf.len() })
        }
    }
}
