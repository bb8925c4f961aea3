//! Percent-decoding for URL path segments and query values, strict: `%` counts as an escape
//! only when two hex digits follow; anything else is kept as written.

/// Decodes `%XX` escapes, so `/api/streamers/My%20Game` finds `My Game` (Express decodes route
/// parameters the same way). Invalid escapes (`%zz`, `%+1`, a trailing `%4`) are kept as
/// written; bytes that are not UTF-8 after decoding become U+FFFD.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(&[hi, lo])) => hex_digit(hi).zip(hex_digit(lo)).map(|(hi, lo)| hi << 4 | lo),
            _ => None,
        };
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of one ASCII hex digit; `None` for anything else (signs included).
fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%+1"), "%+1");
        assert_eq!(percent_decode("%-1%+f"), "%-1%+f");
        assert_eq!(percent_decode("%C3%A9%2b+"), "é++");
    }
}
