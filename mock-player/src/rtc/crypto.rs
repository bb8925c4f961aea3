//! The crypto provider and DTLS certificate every peer connection of the
//! process shares.

use std::sync::{Arc, OnceLock};

use webrtc::peer_connection::crypto::{self, RTCCryptoProvider, SignatureScheme};
use webrtc::peer_connection::RTCCertificate;

use rtc::peer_connection::certificate::CertificateParams;

/// Why the process's crypto could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("crypto provider: {0}")]
    Provider(#[from] crypto::CryptoError),
    #[error("DTLS certificate parameters: {0}")]
    Params(String),
    #[error("DTLS certificate: {0}")]
    Certificate(#[from] webrtc::error::Error),
}

/// The process-wide crypto provider and DTLS certificate.
pub struct ProcessCrypto {
    pub provider: Arc<dyn RTCCryptoProvider>,
    /// ECDSA P-256, self-signed, as browsers expect. rcgen's default validity
    /// (to the year 4096) is what 0.21 checks, so it is never renewed.
    pub certificate: RTCCertificate,
}

/// The process's crypto, made on first use. Without a certificate in the
/// configuration each peer connection generates a key pair and signs its own
/// (on 0.17 that was ~10 % of a streamer's CPU when 100 players joined at
/// once; libwebrtc likewise shares one per peer-connection factory), and
/// without a provider in the setting engine each connection resolves one.
pub fn process_crypto() -> Result<&'static ProcessCrypto, CryptoError> {
    static CRYPTO: OnceLock<ProcessCrypto> = OnceLock::new();
    if let Some(c) = CRYPTO.get() {
        return Ok(c);
    }
    let provider = crypto::default_provider()?;
    let params = CertificateParams::new(vec!["webrtc".to_owned()]).map_err(|e| CryptoError::Params(e.to_string()))?;
    let certificate = RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)?;
    // Two first callers may both generate; one result is kept, both are valid.
    Ok(CRYPTO.get_or_init(|| ProcessCrypto { provider, certificate }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_certificate_per_process() {
        let a = process_crypto().expect("crypto");
        let b = process_crypto().expect("crypto");
        assert!(std::ptr::eq(a, b));
        let fingerprints = a.certificate.get_fingerprints(a.provider.crypto()).expect("fingerprint");
        assert_eq!(fingerprints.len(), 1);
        assert_eq!(fingerprints[0].algorithm, "sha-256");
    }
}
