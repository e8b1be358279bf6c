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
//! rising order, each from the last. Every page also proves the leaf that
//! counts the list, so a list whose pages are of one height is shown
//! complete, or the node is caught leaving items out (`complete.rs`);
//! pages of different heights are asked again, a few times.
//!
//! Blocks, a transaction's inclusion and validator sets need no state
//! proof: the verified headers commit to them. A commit certificate is
//! checked against the header and the set the light client verified
//! (`prove/chain.rs`).

mod ask;
mod certify;
mod chain;
mod complete;
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
use prost::Message;
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
    /// A proven list has fewer items than the proven leaf counting it.
    #[error(
        "the node left {missing} of the {count} items {counter} counts at height {height} out of the list"
    )]
    Incomplete {
        /// The height of the list and its count.
        height: u64,
        /// Items counted and not listed.
        missing: u64,
        /// What the counting leaf says.
        count: u64,
        /// The counting leaf.
        counter: String,
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

/// The items of every page of a query, and of a list its counting leaves.
struct Answer {
    /// The items, in the node's order.
    items: Vec<Item>,
    /// One counting leaf per page of a list; none for a single item.
    counters: Vec<Item>,
    /// Whether the node had more after the last page followed.
    more: bool,
}

/// Times a list is asked again when its pages were proven at different
/// heights (each time a block committed while it was followed).
const LIST_ATTEMPTS: usize = 3;

/// Every page of `q` (a single item is one page), at most
/// [`pages::MAX_PAGES`].
async fn ask_pages(
    c: &QueryClient<Channel>,
    q: &QueryKind,
    page_size: u32,
) -> Result<Answer, ProveQueryError> {
    let (tagged, more) = pages::follow(page_size, |request| {
        let mut c = c.clone();
        async move {
            let page = ask::ask(&mut c, q, request).await?;
            let items = page.keys.into_iter().zip(page.proofs);
            let items = items.map(|((what, key), proof)| (false, Item { what, key, proof }));
            let counter = page
                .count
                .map(|((what, key), proof)| (true, Item { what, key, proof }));
            Ok::<_, ProveQueryError>((items.chain(counter).collect::<Vec<_>>(), page.next))
        }
    })
    .await?;
    let (counters, items): (Vec<_>, Vec<_>) = tagged.into_iter().partition(|(c, _)| *c);
    Ok(Answer {
        items: items.into_iter().map(|(_, i)| i).collect(),
        counters: counters.into_iter().map(|(_, i)| i).collect(),
        more,
    })
}

/// [`ask_pages`], asked again while a list's pages (and counts) are of
/// different heights, at most [`LIST_ATTEMPTS`] times.
async fn ask_at_one_height(
    c: &QueryClient<Channel>,
    q: &QueryKind,
    page_size: u32,
) -> Result<Answer, ProveQueryError> {
    let mut attempt = 1;
    loop {
        let answer = ask_pages(c, q, page_size).await?;
        let proven = answer.items.iter().chain(&answer.counters);
        if attempt == LIST_ATTEMPTS || complete::one_height(proven) {
            return Ok(answer);
        }
        attempt += 1;
    }
}

/// Verifies each proof against the app hash certified for its height.
fn verify_all<'a>(
    items: impl IntoIterator<Item = &'a Item>,
    heights: &BTreeMap<u64, (Hash, Value)>,
) -> Result<(), ProveQueryError> {
    for item in items {
        let (app_hash, _) = &heights[&item.proof.height];
        verify(&item.proof, &item.key, app_hash).map_err(|source| ProveQueryError::Proof {
            what: item.what.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Whether a proven item is to be shown: all are, but a list of one
/// validator's slash events is asked whole (so it can be shown complete)
/// and keeps that validator's, read from the proven leaf.
fn shown(q: &QueryKind, item: &Item) -> bool {
    match q {
        QueryKind::Slashes(Some(v)) => pb::SlashEventLeaf::decode(&item.proof.value[..])
            .is_ok_and(|l| l.validator.as_slice() == v.0.as_slice()),
        _ => true,
    }
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
async fn certify_heights<'a>(
    certifier: &mut Certifier,
    items: impl IntoIterator<Item = &'a Item>,
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
    let Answer {
        items,
        counters,
        more,
    } = ask_at_one_height(&c, q, page_size).await?;
    let heights = certify_heights(&mut certifier, items.iter().chain(&counters)).await?;
    verify_all(items.iter().chain(&counters), &heights)?;
    let complete = complete::check(q, &items, &counters, more)?;
    let items: Vec<Item> = items.into_iter().filter(|i| shown(q, i)).collect();
    let values: Vec<Value> = items
        .iter()
        .map(|item| {
            let p = &item.proof;
            json!({
                "item": item.what,
                "height": p.height,
                "value": if p.present { leaf::leaf_json(&item.key, &p.value) } else { Value::Null },
            })
        })
        .collect();
    // The lowest height's description stays at the top, as for one item.
    let mut proven = match heights.values().next() {
        Some((_, first)) => first.clone(),
        None => json!({}),
    };
    proven["trusted"] = json!(certifier.trusted());
    proven["items"] = json!(items.len());
    proven["heights"] = Value::Array(heights.into_values().map(|(_, v)| v).collect());
    proven["more"] = json!(more);
    if let Some(c) = complete {
        proven["list"] = c;
    }
    let mut answer = json!({ "proven": proven, "values": values });
    if let QueryKind::Rewards { .. } = q {
        answer["rewards"] = leaf::proven_rewards(&items)?;
    }
    Ok(answer)
}
