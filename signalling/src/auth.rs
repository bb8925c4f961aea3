//! Who may open a WebSocket: shared-secret tokens per role and the browser
//! `Origin` allow-list, checked at the HTTP upgrade so a refused client never
//! gets a single signalling message.
//!
//! Tokens are compared in constant time (both sides hashed first, so not even
//! the length leaks) and are never logged: callers only learn yes or no.

use http::HeaderMap;
use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::percent::percent_decode;

/// Why an upgrade was refused; the transport maps it to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing or wrong token")]
    Unauthorized,
    #[error("origin not allowed")]
    ForbiddenOrigin,
}

/// True when `presented` equals `expected`, in time independent of where they differ.
pub fn token_matches(expected: &Secret, presented: &str) -> bool {
    let a = digest(&SHA256, expected.expose().as_bytes());
    let b = digest(&SHA256, presented.as_bytes());
    a.as_ref().ct_eq(b.as_ref()).into()
}

/// The token a client presents: `Authorization: Bearer <token>` first, else
/// `?token=<token>` in the request target (what browsers can send on a WebSocket).
pub fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let bearer = headers.get_all(http::header::AUTHORIZATION).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let (scheme, rest) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim().to_string())
    });
    bearer.or_else(|| query_param(query?, "token"))
}

/// Check a request against an optional token.
pub fn check_token(expected: Option<&Secret>, headers: &HeaderMap, query: Option<&str>) -> Result<(), Refusal> {
    let Some(expected) = expected else { return Ok(()) };
    match presented_token(headers, query) {
        Some(token) if token_matches(expected, &token) => Ok(()),
        _ => Err(Refusal::Unauthorized),
    }
}

/// Browsers always send `Origin` on a WebSocket; native clients usually do not.
/// With an allow-list, a present `Origin` must be on it (exact, case-insensitive
/// match of `scheme://host[:port]`); an absent one is allowed.
pub fn check_origin(allowed: &[String], headers: &HeaderMap) -> Result<(), Refusal> {
    if allowed.is_empty() {
        return Ok(());
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().map_err(|_| Refusal::ForbiddenOrigin)?.trim().trim_end_matches('/');
    if allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(Refusal::ForbiddenOrigin)
    }
}

/// The first value of `name` in a query string, percent-decoded (`+` is a space, as in a form).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    // `+` becomes a space before decoding, so an escaped `%2B` stays a plus.
    let decode = |text: &str| percent_decode(&text.replace('+', " "));
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn secret(s: &str) -> Secret {
        Secret::new(s).expect("non-empty")
    }

    #[test]
    fn token_comparison() {
        let s = secret("s3cret");
        assert!(token_matches(&s, "s3cret"));
        for wrong in ["", "s3cre", "s3cret ", "S3CRET", "s3cretx", "\0"] {
            assert!(!token_matches(&s, wrong), "{wrong:?}");
        }
    }

    #[test]
    fn bearer_header_or_query() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h, Some("a=1&token=x%2By+z")), Some("x+y z".into()));
        assert_eq!(presented_token(&h, Some("StreamerId=S")), None);
        assert_eq!(presented_token(&h, None), None);
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer  abc "));
        assert_eq!(presented_token(&h, Some("token=other")), Some("abc".into()));
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_token(&h, None), None);
    }

    #[test]
    fn check_token_refuses_missing_and_wrong() {
        let s = secret("t");
        let h = HeaderMap::new();
        assert_eq!(check_token(None, &h, None), Ok(()));
        assert_eq!(check_token(Some(&s), &h, None), Err(Refusal::Unauthorized));
        assert_eq!(check_token(Some(&s), &h, Some("token=u")), Err(Refusal::Unauthorized));
        assert_eq!(check_token(Some(&s), &h, Some("token=t")), Ok(()));
        assert_eq!(check_token(Some(&s), &h, Some("token=%ZZ")), Err(Refusal::Unauthorized));
    }

    #[test]
    fn query_token_is_percent_decoded_strictly() {
        let h = HeaderMap::new();
        let s = secret("a b+c/é%");
        // Accepted when the escapes decode to the token (`+` is a space, `%2B` a plus).
        assert_eq!(check_token(Some(&s), &h, Some("token=a%20b%2Bc%2F%C3%A9%25")), Ok(()));
        assert_eq!(check_token(Some(&s), &h, Some("x=1&token=a+b%2bc/%c3%a9%25")), Ok(()));
        // A malformed escape is kept as written, so it never matches the decoded token.
        assert_eq!(check_token(Some(&s), &h, Some("token=a%20b%2Bc%2F%C3%A9%2")), Err(Refusal::Unauthorized));
        // ... and a lone `%` is kept as written too (this token ends in one).
        assert_eq!(check_token(Some(&s), &h, Some("token=a%20b%2Bc%2F%C3%A9%")), Ok(()));
        // `%` needs two hex digits: `%+1` is not byte 1 (a lenient decoder would accept it).
        let control = secret("t\u{1}");
        assert_eq!(check_token(Some(&control), &h, Some("token=t%01")), Ok(()));
        assert_eq!(check_token(Some(&control), &h, Some("token=t%+1")), Err(Refusal::Unauthorized));
        assert_eq!(query_param("token=t%+1", "token").as_deref(), Some("t% 1"));
    }

    #[test]
    fn origin_allow_list() {
        let allowed = vec!["https://good.example".to_string()];
        let mut h = HeaderMap::new();
        assert_eq!(check_origin(&allowed, &h), Ok(()), "native clients send no Origin");
        h.insert(http::header::ORIGIN, HeaderValue::from_static("https://GOOD.example/"));
        assert_eq!(check_origin(&allowed, &h), Ok(()));
        h.insert(http::header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert_eq!(check_origin(&allowed, &h), Err(Refusal::ForbiddenOrigin));
        h.insert(http::header::ORIGIN, HeaderValue::from_static("null"));
        assert_eq!(check_origin(&allowed, &h), Err(Refusal::ForbiddenOrigin));
        assert_eq!(check_origin(&[], &h), Ok(()));
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", secret("hunter2")), "Secret(<redacted>)");
        assert!(Secret::new("  ").is_none());
    }
}
