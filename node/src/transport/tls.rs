//! TLS for the peer-to-peer QUIC transport: self-signed node certificates
//! (rcgen) and rustls configurations that demand a certificate from both sides
//! but do not chain it to any authority.
//!
//! Why no certificate authority: a node's *validator* identity is its BLS key,
//! not its TLS key. TLS here only has to prove that the peer holds the private
//! key of the certificate it presented (rustls checks the handshake signature
//! with that certificate's key); the Hello exchange (`hello.rs`) then binds
//! that certificate to a BLS key. So the verifiers accept any well-formed
//! certificate, but require one, and always verify the handshake signature.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// ALPN protocol name of Agora's peer protocol; a peer speaking anything else is refused.
pub const ALPN: &[u8] = b"agora/1";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not generate a key or certificate.
    #[error("generating TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the configuration (bad key, unsupported version).
    #[error("building TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn rejected the rustls configuration (it needs TLS 1.3).
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(String),
    /// A PEM file did not contain what was expected.
    #[error("reading PEM: {0}")]
    Pem(String),
}

/// A node's TLS identity: a certificate and the PKCS#8 key it was made for.
#[derive(Clone)]
pub struct TlsIdentity {
    /// DER of the self-signed certificate.
    pub cert: CertificateDer<'static>,
    /// PKCS#8 DER of the private key.
    key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_len", &self.cert.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Generates a fresh ECDSA P-256 key and a self-signed certificate for it.
    pub fn generate() -> Result<Self, TlsError> {
        let ck = rcgen::generate_simple_self_signed(vec!["agora-node".to_string()])?;
        Ok(Self {
            cert: ck.cert.der().clone(),
            key_pkcs8: ck.signing_key.serialize_der(),
        })
    }

    /// Builds an identity from PEM text of the certificate and the PKCS#8 key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::Pem(format!("certificate: {e}")))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::Pem(format!("private key: {e}")))?;
        Ok(Self {
            cert,
            key_pkcs8: key.secret_pkcs8_der().to_vec(),
        })
    }

    /// PEM text of the certificate.
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert)
    }

    /// PEM text of the private key (PKCS#8). Secret: write it with 0600 permissions.
    pub fn key_pem(&self) -> String {
        pem_encode("PRIVATE KEY", &self.key_pkcs8)
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    // A tiny base64 encoder: the only PEM we write is our own, and pulling in a
    // crate for 20 lines is not worth it.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The ring crypto provider, chosen explicitly (STACK.md: never rely on the
/// process-level default).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any well-formed certificate from either side, but requires one,
/// and verifies the TLS handshake signature with it.
#[derive(Debug)]
struct AnyCertVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyCertVerifier {
    fn new(provider: &CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }

    fn well_formed(cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        ParsedCertificate::try_from(cert).map(|_| ())
    }
}

/// The handshake-signature methods that `ServerCertVerifier` and
/// `ClientCertVerifier` both require, with the same meaning: the peer proves
/// it holds its certificate's key, checked with the provider's algorithms.
macro_rules! handshake_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for AnyCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::well_formed(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signature_checks!();
}

impl ClientCertVerifier for AnyCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // A peer without a certificate cannot be bound to any identity at all.
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::well_formed(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signature_checks!();
}

/// The rustls server configuration: TLS 1.3 only, client certificate required.
pub fn server_config(id: &TlsIdentity) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(AnyCertVerifier::new(&provider));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key())?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// The rustls client configuration: TLS 1.3 only, presents our certificate.
pub fn client_config(id: &TlsIdentity) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(AnyCertVerifier::new(&provider));
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![id.cert.clone()], id.key())?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// Both quinn configurations for one endpoint, with Agora's QUIC limits applied.
pub fn quic_configs(
    id: &TlsIdentity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), TlsError> {
    let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_config(id)?)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let client_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_config(id)?)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport.clone());
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport);
    Ok((server, client))
}

/// The certificate a connected peer presented (TLS guarantees it holds the key).
pub fn peer_certificate(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let any = conn.peer_identity()?;
    let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let id = TlsIdentity::generate().unwrap();
        let back = TlsIdentity::from_pem(&id.cert_pem(), &id.key_pem()).unwrap();
        assert_eq!(back.cert, id.cert);
        assert_eq!(back.key_pkcs8, id.key_pkcs8);
        assert!(server_config(&back).is_ok());
    }

    #[test]
    fn garbage_pem_is_an_error() {
        assert!(TlsIdentity::from_pem("nope", "nope").is_err());
    }
}
