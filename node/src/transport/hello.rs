//! The Hello exchange that binds a connection's TLS certificate to a validator
//! identity (a BLS key).
//!
//! Each side signs `"agora/hello/v1" ‖ chain_id ‖ SHA3-256(its own TLS
//! certificate DER)` with its BLS key. The other side checks the signature
//! against the certificate it actually saw in the TLS handshake of *this*
//! connection, so a Hello cannot be replayed by a node with another TLS key:
//! whoever holds the certificate's private key (TLS proved that) is the holder
//! of the BLS key (the Hello proved that).
//!
//! The Hello also names the chain id and the genesis file's hash. Peers that
//! differ in either are refused before anything else is exchanged: two nodes
//! of one chain id with different genesis files (a testnet generated twice, a
//! file edited on one machine) would otherwise take each other's blocks for
//! forgeries and ban each other, and neither log would say why. A Hello
//! without a genesis hash (a node from before the field) is let in, so that
//! a rolling upgrade does not split the chain. The genesis hash is not
//! signed: the TLS channel already binds the Hello to this
//! connection, and a peer that lies about it only keeps itself out.

use agora_proto::v1::Hello;
use agora_validator::crypto::sha3_256;
use agora_validator::{Address, ChainId, Hash, PublicKey, SecretKey, Signature};

/// Domain-separation prefix of the Hello signing bytes.
pub const HELLO_PREFIX: &[u8] = b"agora/hello/v1";

/// Who a connected peer proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// The peer proved possession of this BLS key; its votes may count (if the
    /// key is in the validator set of the height in question).
    Validator {
        /// The peer's BLS public key.
        public_key: PublicKey,
        /// Address of that key.
        address: Address,
    },
    /// The peer proved no validator identity. Whatever it sends is gossip to
    /// be verified on its own merits; it never speaks *as* a validator.
    FullNode,
}

impl PeerIdentity {
    /// The validator address, if the peer proved one.
    pub fn validator_address(&self) -> Option<Address> {
        match self {
            Self::Validator { address, .. } => Some(*address),
            Self::FullNode => None,
        }
    }
}

/// Why a Hello was not accepted as proof of a validator identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The peer is on another chain; the connection must be closed.
    #[error("peer is on chain {theirs:?}, we are on {ours:?}")]
    ChainMismatch {
        /// Our chain id.
        ours: String,
        /// The chain id the peer announced.
        theirs: String,
    },
    /// The peer runs the same chain id from another genesis file; the
    /// connection must be closed.
    #[error(
        "peer's genesis file hashes to {theirs}, ours to {ours}: every node of a chain needs a byte-identical genesis.json"
    )]
    GenesisMismatch {
        /// SHA3-256 of our genesis file, hex.
        ours: String,
        /// What the peer announced, hex (at most 32 bytes shown).
        theirs: String,
    },
    /// The public key does not decode (wrong length, not in the subgroup).
    #[error("hello public key is invalid")]
    BadPublicKey,
    /// The signature does not decode or does not verify for this connection's certificate.
    #[error("hello signature does not verify for the certificate on this connection")]
    BadSignature,
}

/// The bytes a node signs in its Hello for a given certificate.
pub fn hello_bytes(chain: &ChainId, cert_der: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HELLO_PREFIX.len() + 1 + chain.as_str().len() + 32);
    out.extend_from_slice(HELLO_PREFIX);
    chain.encode_into(&mut out);
    out.extend_from_slice(&sha3_256(cert_der));
    out
}

/// Our Hello: signed with the validator key if we have one, unsigned (full node) otherwise.
pub fn make_hello(
    chain: &ChainId,
    genesis_hash: &Hash,
    key: Option<&SecretKey>,
    own_cert_der: &[u8],
    height: u64,
) -> Hello {
    match key {
        Some(sk) => Hello {
            chain_id: chain.as_str().to_string(),
            bls_public_key: sk.public_key().to_bytes().to_vec(),
            signature: sk
                .sign(&hello_bytes(chain, own_cert_der))
                .to_bytes()
                .to_vec(),
            height,
            // The transport fills in its own incarnation.
            incarnation: 0,
            genesis_hash: genesis_hash.to_vec(),
        },
        None => Hello {
            chain_id: chain.as_str().to_string(),
            bls_public_key: Vec::new(),
            signature: Vec::new(),
            height,
            incarnation: 0,
            genesis_hash: genesis_hash.to_vec(),
        },
    }
}

/// Checks a peer's Hello against the certificate seen on the connection.
///
/// `Ok(FullNode)` when the peer claims no key; an error when it claims one and
/// cannot prove it, or is on another chain or genesis.
pub fn verify_hello(
    hello: &Hello,
    chain: &ChainId,
    genesis_hash: &Hash,
    peer_cert_der: &[u8],
) -> Result<PeerIdentity, HelloError> {
    if hello.chain_id != chain.as_str() {
        return Err(HelloError::ChainMismatch {
            ours: chain.as_str().to_string(),
            theirs: hello.chain_id.chars().take(64).collect(),
        });
    }
    // An empty hash is a node from before the field: refusing it would
    // split a chain in the middle of a rolling upgrade (with half the
    // validators upgraded, neither half holds a quorum).
    if !hello.genesis_hash.is_empty() && hello.genesis_hash != genesis_hash.as_slice() {
        return Err(HelloError::GenesisMismatch {
            ours: hex::encode(genesis_hash),
            theirs: hex::encode(&hello.genesis_hash[..hello.genesis_hash.len().min(32)]),
        });
    }
    if hello.bls_public_key.is_empty() && hello.signature.is_empty() {
        return Ok(PeerIdentity::FullNode);
    }
    let public_key =
        PublicKey::from_bytes(&hello.bls_public_key).map_err(|_| HelloError::BadPublicKey)?;
    let sig = Signature::from_bytes(&hello.signature).map_err(|_| HelloError::BadSignature)?;
    public_key
        .verify(&hello_bytes(chain, peer_cert_der), &sig)
        .map_err(|_| HelloError::BadSignature)?;
    Ok(PeerIdentity::Validator {
        address: Address::of(&public_key),
        public_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Hash = [7; 32];

    fn key(b: u8) -> SecretKey {
        SecretKey::from_seed(&[b; 32]).unwrap()
    }

    #[test]
    fn valid_hello_proves_identity() {
        let chain = ChainId::new("t").unwrap();
        let sk = key(1);
        let h = make_hello(&chain, &G, Some(&sk), b"cert-a", 5);
        let id = verify_hello(&h, &chain, &G, b"cert-a").unwrap();
        assert_eq!(id.validator_address(), Some(Address::of(&sk.public_key())));
    }

    #[test]
    fn hello_for_another_certificate_is_rejected() {
        let chain = ChainId::new("t").unwrap();
        let h = make_hello(&chain, &G, Some(&key(1)), b"cert-a", 5);
        assert_eq!(
            verify_hello(&h, &chain, &G, b"cert-b"),
            Err(HelloError::BadSignature)
        );
    }

    #[test]
    fn other_chain_is_rejected_and_unsigned_is_full_node() {
        let chain = ChainId::new("t").unwrap();
        let other = ChainId::new("u").unwrap();
        let h = make_hello(&other, &G, Some(&key(1)), b"c", 0);
        assert!(matches!(
            verify_hello(&h, &chain, &G, b"c"),
            Err(HelloError::ChainMismatch { .. })
        ));
        let h = make_hello(&chain, &G, None, b"c", 0);
        assert_eq!(
            verify_hello(&h, &chain, &G, b"c"),
            Ok(PeerIdentity::FullNode)
        );
    }

    #[test]
    fn another_genesis_is_rejected_for_validators_and_full_nodes() {
        let chain = ChainId::new("t").unwrap();
        for k in [Some(key(1)), None] {
            let h = make_hello(&chain, &[8; 32], k.as_ref(), b"c", 0);
            let err = verify_hello(&h, &chain, &G, b"c").unwrap_err();
            assert!(matches!(err, HelloError::GenesisMismatch { .. }), "{err}");
            assert!(err.to_string().contains(&hex::encode([8u8; 32])), "{err}");
            // One that names no genesis (an older node) is let in: a
            // rolling upgrade must not split the chain.
            let mut h = make_hello(&chain, &G, k.as_ref(), b"c", 0);
            h.genesis_hash.clear();
            assert!(verify_hello(&h, &chain, &G, b"c").is_ok());
        }
    }
}
