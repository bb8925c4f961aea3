//! TLS for the listeners, with rustls (ring provider) on the accepted TCP
//! stream: warp 0.4's own TLS is a stub, and terminating here lets the
//! streamer and SFU ports speak `wss://` too, not only the player port.
//!
//! Also the plain-HTTP redirect used by `--https_redirect`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("certificate file {0} holds no certificate")]
    NoCert(PathBuf),
    #[error("cannot read private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Config(rustls::Error),
}

/// A TLS acceptor from PEM files (certificate chain; PKCS#8, PKCS#1 or SEC1 key).
pub fn acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert { path: cert_path.to_path_buf(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(cert_path.to_path_buf()));
    }
    // The key's bytes never go into an error message.
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| TlsError::Key { path: key_path.to_path_buf(), reason: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    // HTTP/1.1 only: WebSocket upgrades need it and hyper is serving HTTP/1 here.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Where a plain-HTTP request on the redirect port should go: the same host
/// (port replaced) and path on the HTTPS port.
pub fn redirect_location(host: Option<&str>, fallback_host: &str, https_port: u16, path_and_query: &str) -> String {
    let host = host.map(str::trim).filter(|h| !h.is_empty()).unwrap_or(fallback_host);
    // Strip a port: `[v6]:80` keeps its brackets, `name:80` loses `:80`.
    let bare = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let authority = if https_port == 443 { bare.to_string() } else { format!("{bare}:{https_port}") };
    let path = if path_and_query.starts_with('/') { path_and_query } else { "/" };
    format!("https://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations() {
        assert_eq!(redirect_location(Some("example.org:80"), "x", 443, "/a?b=1"), "https://example.org/a?b=1");
        assert_eq!(redirect_location(Some("example.org"), "x", 8443, "/"), "https://example.org:8443/");
        assert_eq!(redirect_location(Some("[::1]:8080"), "x", 8443, "/p"), "https://[::1]:8443/p");
        assert_eq!(redirect_location(Some("[::1]"), "x", 8443, "/p"), "https://[::1]:8443/p");
        assert_eq!(redirect_location(None, "127.0.0.1", 8443, "*"), "https://127.0.0.1:8443/");
    }

    #[test]
    fn bad_files_are_named_errors() {
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let err = acceptor(&empty, &empty).err().expect("no cert");
        assert!(matches!(err, TlsError::NoCert(_)), "{err}");
        let err = acceptor(&dir.path().join("missing.pem"), &empty).err().expect("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
