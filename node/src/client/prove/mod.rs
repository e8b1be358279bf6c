//! `agora query … --prove`: state answers checked against the chain rather
//! than believed. The node returns each value with a Merkle proof against
//! the app hash of height H; the app hash comes from the header of H + 1,
//! which the light client verifies from the genesis set (or a trusted
//! checkpoint), so nothing the node says is trusted beyond that root.
//!
//! What is shown is decoded from the proven leaf bytes, not from the node's
//! other answer fields. A list is followed page by page; each page is
//! proven at the height the node answered it from (a block may commit
//! between two pages), and the light client verifies those heights in
//! rising order, each from the last. A list's proofs prove each item
//! shown; they do not prove that no item was left out.
//!
//! Blocks, a transaction's inclusion and validator sets need no state
//! proof: the verified headers commit to them. A commit certificate is
//! checked against the header and the set the light client verified
//! (`prove/chain.rs`).

mod ask;
mod certify;
mod chain;
mod leaf;

use std::collections::BTreeMap;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::block::header_hash;
use agora_validator::crypto::Hash;
use agora_validator::ledger::merkle::proof::{ProofError, verify};
use agora_validator::light_client::LightError;
use agora_validator::types::ChainId;
use agora_validator::validator_set::ValidatorSet;
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::pages::{self, StalledPages};
use super::query::QueryKind;
use certify::{Certifier, HEADER_DEADLINE};

/// What the light client starts from.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The genesis file's chain id and validator set.
    Genesis(ChainId, ValidatorSet),
    /// A block hash the user trusts, at a height.
    Checkpoint(u64, Hash),
}

/// Why a proven query failed.
#[derive(Debug, thiserror::Error)]
pub enum ProveQueryError {
    /// The query has no state leaf to prove.
    #[error(
        "--prove works with: account, validator, delegation, delegations, unbonding, slashes, redelegations, rewards, supply, block, cert, validators, tx"
    )]
    Unsupported,
    /// The node refused or failed.
    #[error("{0}")]
    Node(String),
    /// The answer does not fit the question.
    #[error("the node's answer is unusable: {0}")]
    Answer(String),
    /// The certifying header did not come.
    #[error("the node did not commit height {0} within {HEADER_DEADLINE:?}")]
    NoHeader(u64),
    /// The certifying header did not verify.
    #[error("the header certifying the proof did not verify: {0}")]
    Light(#[from] LightError),
    /// A served commit certificate does not certify the verified header
    /// with the verified set.
    #[error(
        "the certificate served for height {height} does not certify its verified header: {source}"
    )]
    Certificate {
        /// The certificate's height.
        height: u64,
        /// Why.
        source: agora_validator::certificate::CertificateError,
    },
    /// The node's pages do not advance.
    #[error(transparent)]
    Pages(#[from] StalledPages),
    /// A proof does not show what the node claimed.
    #[error("the proof of {what} does not verify: {source}")]
    Proof {
        /// The item.
        what: String,
        /// Why.
        source: ProofError,
    },
}

impl From<tonic::Status> for ProveQueryError {
    fn from(s: tonic::Status) -> Self {
        Self::Node(super::status_text(&s))
    }
}

/// One proven item: its name, its state key and the node's proof.
struct Item {
    what: String,
    key: Vec<u8>,
    proof: pb::StateProof,
}

/// Every page of `q` (a single item is one page), at most
/// [`pages::MAX_PAGES`]: the items in the node's order, and whether the
/// node had more after the last page followed.
async fn ask_pages(
    c: &QueryClient<Channel>,
    q: &QueryKind,
    page_size: u32,
) -> Result<(Vec<Item>, bool), ProveQueryError> {
    pages::follow(page_size, |request| {
        let mut c = c.clone();
        async move {
            let page = ask::ask(&mut c, q, request).await?;
            let items = page.keys.into_iter().zip(page.proofs);
            let items = items.map(|((what, key), proof)| Item { what, key, proof });
            Ok((items.collect(), page.next))
        }
    })
    .await
}

/// What one certified height proves: its header's app hash, and how the
/// light client reached it.
fn height_json(height: u64, header: &pb::Header, path: &[u64], items: usize) -> Value {
    json!({
        "height": height,
        "app_hash": hex::encode(&header.app_hash),
        "certified_by_height": height + 1,
        "certified_block_hash": hex::encode(header_hash(header)),
        "light_client_heights": path,
        "items": items,
    })
}

/// Certifies every height the items were proven at, lowest first: per
/// height, its app hash and its JSON description.
async fn certify_heights(
    certifier: &mut Certifier,
    items: &[Item],
) -> Result<BTreeMap<u64, (Hash, Value)>, ProveQueryError> {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for item in items {
        let h = item.proof.height;
        // Height H is certified by header H + 1.
        if h == u64::MAX {
            return Err(ProveQueryError::Answer(format!(
                "a proof claims height {h}, which no header certifies"
            )));
        }
        *counts.entry(h).or_default() += 1;
    }
    if let Some(top) = counts.keys().next_back() {
        certifier.wait_for(top + 1).await?;
    }
    let mut heights = BTreeMap::new();
    for (height, n) in counts {
        let (header, path) = certifier.header(height + 1).await?;
        let app_hash: Hash = header.app_hash.as_slice().try_into().map_err(|_| {
            ProveQueryError::Answer(format!(
                "the app hash certified by height {} is not 32 bytes",
                height + 1
            ))
        })?;
        heights.insert(height, (app_hash, height_json(height, &header, &path, n)));
    }
    Ok(heights)
}

/// Runs a proven query, asking `page_size` items per page of a list: the
/// proven values and how they were proven.
pub async fn run(
    channel: Channel,
    q: &QueryKind,
    trust: Trust,
    page_size: u32,
) -> Result<Value, ProveQueryError> {
    let mut c = QueryClient::new(channel).max_decoding_message_size(32 * 1024 * 1024);
    let mut certifier = Certifier::new(c.clone(), trust);
    match q {
        QueryKind::Block(h) => return chain::block(&mut c, &mut certifier, *h).await,
        QueryKind::Validators(h) => return chain::validator_set(&mut c, &mut certifier, *h).await,
        QueryKind::Tx(hash) => return chain::transaction(&mut c, &mut certifier, hash).await,
        QueryKind::Cert(h) => return chain::certificate(&mut c, &mut certifier, *h).await,
        _ => {}
    }
    let (items, more) = ask_pages(&c, q, page_size).await?;
    let heights = certify_heights(&mut certifier, &items).await?;
    let mut values = Vec::with_capacity(items.len());
    for item in &items {
        let (app_hash, _) = &heights[&item.proof.height];
        verify(&item.proof, &item.key, app_hash).map_err(|source| ProveQueryError::Proof {
            what: item.what.clone(),
            source,
        })?;
        let p = &item.proof;
        values.push(json!({
            "item": item.what,
            "height": p.height,
            "value": if p.present { leaf::leaf_json(&item.key, &p.value) } else { Value::Null },
        }));
    }
    // The lowest height's description stays at the top, as for one item.
    let mut proven = match heights.values().next() {
        Some((_, first)) => first.clone(),
        None => json!({}),
    };
    proven["trusted"] = json!(certifier.trusted());
    proven["items"] = json!(items.len());
    proven["heights"] = Value::Array(heights.into_values().map(|(_, v)| v).collect());
    proven["more"] = json!(more);
    let mut answer = json!({ "proven": proven, "values": values });
    if let QueryKind::Rewards { .. } = q {
        answer["rewards"] = leaf::proven_rewards(&items)?;
    }
    Ok(answer)
}
