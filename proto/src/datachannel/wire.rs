//! Wire primitives shared by both directions: the [`WireField`] trait (how a
//! field type goes on the wire) with its little-endian numbers and bool,
//! UTF-16LE strings (with or without a `u16` count) and a bounds-checked
//! [`Reader`] that turns every short or malformed payload into a
//! [`DataChannelError`].

use super::DataChannelError;

/// Direction marker: player → streamer (strings carry a `u16` count).
pub(super) enum PlayerToStreamer {}
/// Direction marker: streamer → player (strings run to the end).
pub(super) enum StreamerToPlayer {}

/// How a field type goes on the wire in `Direction`, and its type names in a
/// Protocol table's `structure` (the names Epic's frontend understands:
/// `uint8`, `uint16`, `int16`, `double`, `string`).
pub(super) trait WireField<Direction>: Sized {
    const STRUCTURE: &'static [&'static str];
    fn put(&self, out: &mut Vec<u8>);
    fn read(r: &mut Reader<'_>) -> Result<Self, DataChannelError>;
}

/// Numbers are little-endian, the same in both directions.
macro_rules! little_endian {
    ($( $ty:ty => $structure:literal ),* $(,)?) => {
        $(
            impl<D> WireField<D> for $ty {
                const STRUCTURE: &'static [&'static str] = &[$structure];
                fn put(&self, out: &mut Vec<u8>) {
                    out.extend_from_slice(&self.to_le_bytes());
                }
                fn read(r: &mut Reader<'_>) -> Result<Self, DataChannelError> {
                    Ok(<$ty>::from_le_bytes(r.array()?))
                }
            }
        )*
    };
}

little_endian!(u8 => "uint8", u16 => "uint16", i16 => "int16", u32 => "uint32", f64 => "double");

/// One byte, non-zero is true.
impl<D> WireField<D> for bool {
    const STRUCTURE: &'static [&'static str] = &["uint8"];
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DataChannelError> {
        Ok(<u8 as WireField<D>>::read(r)? != 0)
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
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
    /// The next `N` bytes, for a little-endian number.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DataChannelError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn utf16(&self, bytes: &[u8]) -> Result<String, DataChannelError> {
        if bytes.len() & 1 != 0 {
            return Err(DataChannelError::OddUtf16Length { name: self.name, len: bytes.len() });
        }
        let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        String::from_utf16(&units).map_err(|_| DataChannelError::InvalidUtf16 { name: self.name })
    }
    pub(super) fn prefixed_string(&mut self) -> Result<String, DataChannelError> {
        let count = u16::from_le_bytes(self.array()?) as usize;
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
