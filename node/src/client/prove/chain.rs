//! What the chain itself commits to, proven without a state proof: a block
//! (its header is the one the light client verified, its body matches that
//! header's hashes), a transaction's inclusion (in such a block), and a
//! validator set (its hash is the one a verified header names: the header
//! of its height, or the previous header's `next_validators_hash` for the
//! height still being decided). A commit certificate is not in any header:
//! the node's certificate of a height is verified against the header and
//! the validator set the light client verified for that height.

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::block::{header_hash, tx_hashes};
use agora_validator::engine::block_rules::check_body;
use agora_validator::validator_set::ValidatorSet;
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::ProveQueryError;
use super::certify::Certifier;
use crate::client::query::{block_json, cert_json, header_json, validator_set_json};
use agora_validator::certificate::CommitCertificate;
use agora_validator::types::{ChainId, Power};

/// How a chain object was proven, for the answer's `proven` field.
fn proven(certifier: &Certifier, by: &pb::Header, path: &[u64]) -> Value {
    json!({
        "certified_by_height": by.height,
        "certified_block_hash": hex::encode(header_hash(by)),
        "trusted": certifier.trusted(),
        "light_client_heights": path,
    })
}

/// Block `h`, its header verified by the light client and its body checked
/// against that header.
pub(super) async fn block(
    c: &mut QueryClient<Channel>,
    certifier: &mut Certifier,
    h: u64,
) -> Result<Value, ProveQueryError> {
    if h == 0 {
        return Err(ProveQueryError::Answer("blocks start at height 1".into()));
    }
    let (header, path, block) = certified_block(c, certifier, h).await?;
    let mut answer = block_json(&header_hash(&header), &block);
    answer["proven"] = proven(certifier, &header, &path);
    Ok(answer)
}

/// The inclusion of transaction `hash` in the block the node says holds
/// it, that block proven as [`block`] proves one. Whether it succeeded is
/// not committed by any header: its status and log are shown as the
/// node's word (`node_says`).
pub(super) async fn transaction(
    c: &mut QueryClient<Channel>,
    certifier: &mut Certifier,
    hash: &[u8; 32],
) -> Result<Value, ProveQueryError> {
    let r = c
        .get_tx(pb::GetTxRequest {
            hash: hash.to_vec(),
        })
        .await?
        .into_inner();
    let status = crate::client::tx::status_name(r.status);
    if r.height == 0 {
        return Err(ProveQueryError::Answer(format!(
            "the node says the transaction is {status}, in no block: there is no inclusion to prove"
        )));
    }
    let h = r.height;
    let (header, path, block) = certified_block(c, certifier, h).await?;
    let index = position_in(h, &block, hash)?;
    Ok(json!({
        "tx_hash": hex::encode(hash),
        "height": h,
        "index": index,
        "proven": proven(certifier, &header, &path),
        "node_says": {"status": status, "log": r.log},
    }))
}

/// The node's commit certificate of height `h`, verified as the light
/// client would: it commits the header the light client verified for `h`,
/// and more than 2/3 of that height's verified set signed it. The
/// certificate shown is the node's, which may have more signers than the
/// one the light client used.
pub(super) async fn certificate(
    c: &mut QueryClient<Channel>,
    certifier: &mut Certifier,
    h: u64,
) -> Result<Value, ProveQueryError> {
    if h == 0 {
        return Err(ProveQueryError::Answer(
            "certificates start at height 1".into(),
        ));
    }
    let served = c
        .get_commit_certificate(pb::GetCommitCertificateRequest { height: h })
        .await?
        .into_inner()
        .certificate
        .ok_or_else(|| {
            ProveQueryError::Answer(format!("no certificate in the answer for height {h}"))
        })?;
    let (header, path) = certifier.header(h).await?;
    let (chain, set) = certifier
        .last_set()
        .ok_or_else(|| ProveQueryError::Answer("the verified set was not kept".into()))?;
    let signed = check_certificate(h, chain, set, &header, &served)?;
    let total = set.total_power();
    Ok(json!({
        "certificate": cert_json(&served),
        "header": header_json(&header),
        "signed_power": signed,
        "total_power": total,
        "proven": proven(certifier, &header, &path),
    }))
}

/// Whether `served` certifies the verified `header` of height `h` under
/// the verified `set`: the same height and block, a bitmap that fits the
/// set, signers with more than 2/3 of its power, and a valid aggregate
/// signature. Returns the signed power.
fn check_certificate(
    h: u64,
    chain: &ChainId,
    set: &ValidatorSet,
    header: &pb::Header,
    served: &pb::CommitCertificate,
) -> Result<Power, ProveQueryError> {
    let fail = |source| ProveQueryError::Certificate { height: h, source };
    let cert = CommitCertificate::from_proto(served).map_err(fail)?;
    cert.verify_for(chain, set, h, &header_hash(header))
        .map_err(fail)?;
    cert.signed_power(set).map_err(fail)
}

/// The validator set of height `h` (0: the height being decided), its hash
/// found in a verified header.
pub(super) async fn validator_set(
    c: &mut QueryClient<Channel>,
    certifier: &mut Certifier,
    h: u64,
) -> Result<Value, ProveQueryError> {
    let r = c
        .get_validator_set(pb::GetValidatorSetRequest { height: h })
        .await?
        .into_inner();
    let height = r.height;
    if height == 0 || (h != 0 && height != h) {
        return Err(ProveQueryError::Answer(format!(
            "asked for the set of height {h}, the node answered height {height}"
        )));
    }
    let set = ValidatorSet::from_proto(&r.validator_set.unwrap_or_default())
        .map_err(|e| ProveQueryError::Answer(format!("the validator set: {e}")))?;
    let latest = c
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner()
        .latest_height;
    // A committed height's header names its own set; the height being
    // decided has none yet, and the last header names its set as the next.
    if height > latest && latest == 0 {
        return Err(ProveQueryError::Answer(
            "no block is committed yet: the first height's set is the genesis file's".into(),
        ));
    }
    let (header, path, named) = if height <= latest {
        let (header, path) = certifier.header(height).await?;
        let named = header.validators_hash.clone();
        (header, path, named)
    } else {
        let (header, path) = certifier.header(height - 1).await?;
        let named = header.next_validators_hash.clone();
        (header, path, named)
    };
    check_set(height, &named, &set)?;
    let mut answer = validator_set_json(height, &set.to_proto());
    answer["proven"] = proven(certifier, &header, &path);
    Ok(answer)
}

/// Whether `block`, served for height `h`, is the block of the certified
/// `header`: the same header, and a body its hashes commit to.
fn check_block(h: u64, header: &pb::Header, block: &pb::Block) -> Result<(), ProveQueryError> {
    let served = block.header.as_ref().map(header_hash);
    if served != Some(header_hash(header)) {
        return Err(ProveQueryError::Answer(format!(
            "the block served for height {h} is not the certified one"
        )));
    }
    check_body(block).map_err(|e| {
        ProveQueryError::Answer(format!(
            "the body of block {h} does not match its certified header: {e}"
        ))
    })
}

/// The verified header of `h`, the light client's path to it, and the
/// node's block `h`, checked against that header ([`check_block`]).
async fn certified_block(
    c: &mut QueryClient<Channel>,
    certifier: &mut Certifier,
    h: u64,
) -> Result<(pb::Header, Vec<u64>, pb::Block), ProveQueryError> {
    let (header, path) = certifier.header(h).await?;
    let block = c
        .get_block(pb::GetBlockRequest { height: h })
        .await?
        .into_inner()
        .block
        .ok_or_else(|| ProveQueryError::Answer(format!("no block in the answer for height {h}")))?;
    check_block(h, &header, &block)?;
    Ok((header, path, block))
}

/// Where block `h` (checked against its certified header) holds the
/// transaction `hash`.
fn position_in(h: u64, block: &pb::Block, hash: &[u8; 32]) -> Result<usize, ProveQueryError> {
    tx_hashes(&block.txs)
        .iter()
        .position(|t| t == hash)
        .ok_or_else(|| {
            ProveQueryError::Answer(format!(
                "the certified block {h} does not hold transaction {}",
                hex::encode(hash)
            ))
        })
}

/// Whether `set`, served for height `height`, is the one a certified header
/// names by the hash `named`.
fn check_set(height: u64, named: &[u8], set: &ValidatorSet) -> Result<(), ProveQueryError> {
    if named == set.hash() {
        return Ok(());
    }
    Err(ProveQueryError::Answer(format!(
        "the set served for height {height} hashes to {}, the certified header names {}",
        hex::encode(set.hash()),
        hex::encode(named)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_validator::block::{hash_list, list_hash};
    use agora_validator::crypto::{SecretKey, ZERO_HASH, sha3_256};
    use agora_validator::validator_set::Validator;

    /// An empty block at height 3 whose header commits to its body.
    fn empty_block() -> pb::Block {
        pb::Block {
            header: Some(pb::Header {
                chain_id: "c".into(),
                height: 3,
                txs_hash: hash_list(&[]).to_vec(),
                evidence_hash: list_hash::<pb::Evidence>(&[]).to_vec(),
                last_commit_hash: ZERO_HASH.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_block_is_taken_only_with_its_certified_header_and_body() {
        let block = empty_block();
        let header = block.header.clone().unwrap();
        check_block(3, &header, &block).unwrap();
        // Another header than the certified one.
        let mut other = header.clone();
        other.time_ms += 1;
        let err = check_block(3, &other, &block).unwrap_err();
        assert!(err.to_string().contains("not the certified one"), "{err}");
        // The certified header with a body it does not commit to.
        let mut forged = block.clone();
        forged.txs.push(pb::Transaction::default());
        let err = check_block(3, &header, &forged).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn a_transaction_is_found_only_in_the_block_that_holds_it() {
        let tx = |nonce| pb::Transaction {
            body: Some(pb::TxBody {
                nonce,
                ..Default::default()
            }),
            ..Default::default()
        };
        let block = pb::Block {
            txs: vec![tx(1), tx(2)],
            ..Default::default()
        };
        let second = agora_validator::block::tx_hash(&tx(2));
        assert_eq!(position_in(4, &block, &second).unwrap(), 1);
        let absent = agora_validator::block::tx_hash(&tx(3));
        let err = position_in(4, &block, &absent).unwrap_err();
        assert!(err.to_string().contains("does not hold"), "{err}");
    }

    #[test]
    fn a_set_is_taken_only_with_the_hash_a_certified_header_names() {
        let key = |i: u8| SecretKey::from_seed(&sha3_256(&[i])).unwrap().public_key();
        let set = ValidatorSet::new(vec![Validator::new(key(1), 5)]).unwrap();
        check_set(7, &set.hash(), &set).unwrap();
        let other = ValidatorSet::new(vec![Validator::new(key(1), 6)]).unwrap();
        let err = check_set(7, &other.hash(), &set).unwrap_err();
        assert!(
            err.to_string().contains("the certified header names"),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_is_taken_only_for_the_verified_header_and_set() {
        use agora_validator::VoteType;
        use agora_validator::certificate::CertificateError;
        use agora_validator::signing::vote_bytes;

        let secret = |i: u8| SecretKey::from_seed(&sha3_256(&[i])).unwrap();
        let set = ValidatorSet::new(
            (1..=4)
                .map(|i| Validator::new(secret(i).public_key(), 10))
                .collect(),
        )
        .unwrap();
        let chain = ChainId::new("c".to_string()).unwrap();
        let header = empty_block().header.unwrap();
        // Certificates of height 3 signed by `signers` over `block_hash`.
        let cert = |signers: &[u8], height: u64, block_hash: [u8; 32]| {
            let msg = vote_bytes(&chain, VoteType::Precommit, height, 0, &block_hash);
            let sigs: Vec<_> = signers
                .iter()
                .map(|k| {
                    let address = Validator::new(secret(*k).public_key(), 10).address;
                    (set.index_of(&address).unwrap(), secret(*k).sign(&msg))
                })
                .collect();
            CommitCertificate::from_precommits(&set, height, 0, block_hash, &sigs)
                .unwrap()
                .to_proto()
        };
        let hash = header_hash(&header);
        let signed = check_certificate(3, &chain, &set, &header, &cert(&[1, 2, 3], 3, hash));
        assert_eq!(signed.unwrap(), 30);
        // The controls: each breaks one thing the light client relies on.
        let refusal = |served: &pb::CommitCertificate| match check_certificate(
            3, &chain, &set, &header, served,
        )
        .unwrap_err()
        {
            ProveQueryError::Certificate { height: 3, source } => source,
            other => panic!("not a certificate refusal: {other}"),
        };
        let other_block = cert(&[1, 2, 3], 3, [7; 32]);
        assert!(matches!(
            refusal(&other_block),
            CertificateError::WrongBlock { .. }
        ));
        let other_height = cert(&[1, 2, 3], 4, hash);
        assert!(matches!(
            refusal(&other_height),
            CertificateError::WrongHeight { .. }
        ));
        let two_thirds = cert(&[1, 2], 3, hash);
        assert!(matches!(
            refusal(&two_thirds),
            CertificateError::InsufficientPower { .. }
        ));
        let mut forged = cert(&[1, 2, 3], 3, hash);
        forged.signers = cert(&[1, 2, 4], 3, hash).signers;
        assert!(matches!(refusal(&forged), CertificateError::BadSignature));
    }
}
