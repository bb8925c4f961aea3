//! The crypto provider and DTLS certificate every peer connection of the
//! process shares.

use std::sync::{Arc, OnceLock};

use ::rtc::crypto::{RTCCryptoProvider, SignatureScheme};
use ::rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};

use super::RtcError;

/// The process-wide crypto provider and DTLS certificate.
pub struct ProcessCrypto {
    pub provider: Arc<dyn RTCCryptoProvider>,
    pub certificate: RTCCertificate,
}

impl std::fmt::Debug for ProcessCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCrypto").field("expires", &self.certificate.expires).finish()
    }
}

/// One crypto provider and one ECDSA P-256 self-signed certificate (what
/// browsers expect) for every peer connection of this process. Without them
/// webrtc-rs resolves a provider and generates a key pair and certificate per
/// connection: on 0.17 that was ~10 % of the streamer's CPU when 100 players
/// joined at once. libwebrtc likewise shares one certificate per
/// peer-connection factory. The certificate keeps rcgen's default validity
/// (far in the future; webrtc-rs refuses expired ones, browsers only check
/// the fingerprint), so it lives as long as the process.
pub fn process_crypto() -> Result<&'static ProcessCrypto, RtcError> {
    static CRYPTO: OnceLock<ProcessCrypto> = OnceLock::new();
    if let Some(c) = CRYPTO.get() {
        return Ok(c);
    }
    let provider = ::rtc::crypto::default_provider()?;
    let params = CertificateParams::new(vec!["webrtc".to_owned()]).map_err(|e| RtcError::Certificate(e.to_string()))?;
    let certificate = RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)?;
    // Two first callers may both generate one: the first stored wins, the other is dropped.
    Ok(CRYPTO.get_or_init(|| ProcessCrypto { provider, certificate }))
}
