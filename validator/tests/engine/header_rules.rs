//! The block rules on a proposed block of height 2: each header rule
//! refuses its own violation.

use super::*;

fn context<'a>(e: &'a Engine<u8>, limits: &'a agora_validator::engine::BlockLimits) -> Context<'a> {
    Context {
        chain: e.chain(),
        ledger: e.ledger(),
        tip: e.tip(),
        height: e.height(),
        limits,
        signed: e.core().signed_points(),
    }
}

/// A block of height 2 as its lottery winner of `round` would build it.
fn proposal_block(e: &Engine<u8>, round: u32) -> pb::Block {
    let limits = Default::default();
    let ctx = context(e, &limits);
    let mut b = block_rules::build_block(&ctx, round, NOW + 10, &NoMempool, Vec::new());
    let set = e.ledger().validator_set(e.height()).expect("set");
    let winner = agora_validator::lottery::proposer(set, &e.tip().seed, e.height(), round);
    b.header.as_mut().expect("header").proposer_address = winner.address.0.to_vec();
    b
}

#[test]
fn every_header_rule_refuses_its_violation() {
    let mut net = Net::new(N);
    net.run_to(1);
    let e = &net.engines[0];
    let limits = Default::default();
    let ctx = context(e, &limits);
    let live = Provenance::Proposal {
        round: 0,
        now_ms: NOW + 10,
        carried_verified: None,
    };
    let good = proposal_block(e, 0);
    let checked = block_rules::check_block(&ctx, &good, live).expect("the block we build passes");
    assert!(
        !checked.carried_certificate_verified,
        "the certificate we committed the tip with is not verified again"
    );
    type Tamper = fn(&mut pb::Block);
    type Expect = fn(&BlockError) -> bool;
    let cases: Vec<(&str, Tamper, Expect)> = vec![
        (
            "txs",
            |b| b.txs.push(pb::Transaction::default()),
            |e| matches!(e, BlockError::BodyMismatch("txs_hash")),
        ),
        (
            "evidence",
            |b| b.evidence.push(pb::Evidence::default()),
            |e| matches!(e, BlockError::BodyMismatch("evidence_hash")),
        ),
        (
            "last commit",
            |b| b.last_commit = None,
            |e| matches!(e, BlockError::BodyMismatch("last_commit_hash")),
        ),
        (
            "app hash",
            |b| hdr(b).app_hash = vec![9; 32],
            |e| matches!(e, BlockError::StateMismatch("app_hash")),
        ),
        (
            "validators",
            |b| hdr(b).validators_hash = vec![9; 32],
            |e| matches!(e, BlockError::StateMismatch("validators_hash")),
        ),
        (
            "next validators",
            |b| hdr(b).next_validators_hash = vec![9; 32],
            |e| matches!(e, BlockError::StateMismatch("next_validators_hash")),
        ),
        (
            "round after",
            |b| hdr(b).proposal_round = 1,
            |e| matches!(e, BlockError::ProposalRound { .. }),
        ),
        (
            "time before parent",
            |b| hdr(b).time_ms = 1,
            |e| matches!(e, BlockError::Time { .. }),
        ),
        (
            "time ahead",
            |b| hdr(b).time_ms = NOW + 60_000,
            |e| matches!(e, BlockError::Time { .. }),
        ),
        (
            "height",
            |b| hdr(b).height = 3,
            |e| matches!(e, BlockError::Height { .. }),
        ),
    ];
    for (name, tamper, expect) in cases {
        let mut b = good.clone();
        tamper(&mut b);
        let err = block_rules::check_block(&ctx, &b, live).expect_err(name);
        assert!(expect(&err), "{name}: {err}");
    }
    // A synced block is not held to our clock.
    let mut late = good.clone();
    hdr(&mut late).time_ms = NOW + 60_000;
    block_rules::check_block(&ctx, &late, Provenance::Certified).expect("no clock for sync");
    // proposal_round must name a round the block's proposer won.
    let r1 = proposal_block(e, 1);
    let set = e.ledger().validator_set(2).expect("set");
    let w0 = agora_validator::lottery::proposer(set, &e.tip().seed, 2, 0).address;
    let w1 = agora_validator::lottery::proposer(set, &e.tip().seed, 2, 1).address;
    if w0 != w1 {
        let mut lie = r1.clone();
        hdr(&mut lie).proposal_round = 0;
        let live1 = Provenance::Proposal {
            round: 1,
            now_ms: NOW + 10,
            carried_verified: None,
        };
        let err = block_rules::check_block(&ctx, &lie, live1).expect_err("wrong winner");
        assert!(matches!(err, BlockError::ProposalRound { .. }), "{err}");
    }
}

fn hdr(b: &mut pb::Block) -> &mut pb::Header {
    b.header.as_mut().expect("header")
}

/// A certified (synced) block's carried certificate is bound to its header
/// by the hash of its bytes and read for its height and block only: its
/// signature is not decoded (its signers checked it). A live proposal of
/// the same bytes decodes it and is refused; a certified block whose
/// carried bytes differ from what its header committed, or that commit
/// another block, is refused.
#[test]
fn a_certified_block_binds_its_carried_certificate_by_hash_without_decoding_it() {
    let mut net = Net::new(N);
    net.run_to(1);
    let e = &net.engines[0];
    let limits = Default::default();
    let ctx = context(e, &limits);
    let rehash = |b: &mut pb::Block| {
        let c = b.last_commit.as_ref().expect("carried");
        hdr(b).last_commit_hash = agora_validator::certificate::encoded_hash(c).to_vec();
    };
    let mut unreadable = proposal_block(e, 0);
    unreadable
        .last_commit
        .as_mut()
        .expect("carried")
        .aggregate_signature = vec![0xff; 96];
    rehash(&mut unreadable);
    block_rules::check_block(&ctx, &unreadable, Provenance::Certified)
        .expect("certified: bound by its bytes, not decoded");
    let live = Provenance::Proposal {
        round: 0,
        now_ms: NOW + 10,
        carried_verified: None,
    };
    let err = block_rules::check_block(&ctx, &unreadable, live).expect_err("live: decoded");
    assert!(matches!(err, BlockError::LastCommit(_)), "{err}");

    let mut swapped = proposal_block(e, 0);
    swapped.last_commit.as_mut().expect("carried").signers[0] ^= 1;
    let err = block_rules::check_block(&ctx, &swapped, Provenance::Certified)
        .expect_err("bytes other than the header's");
    assert!(
        matches!(err, BlockError::BodyMismatch("last_commit_hash")),
        "{err}"
    );

    let mut elsewhere = proposal_block(e, 0);
    elsewhere.last_commit.as_mut().expect("carried").height = 5;
    rehash(&mut elsewhere);
    let err = block_rules::check_block(&ctx, &elsewhere, Provenance::Certified)
        .expect_err("another block's certificate");
    assert!(matches!(err, BlockError::LastCommit(_)), "{err}");
    let mut short = proposal_block(e, 0);
    short.last_commit.as_mut().expect("carried").block_hash = vec![1; 31];
    rehash(&mut short);
    let err = block_rules::check_block(&ctx, &short, Provenance::Certified)
        .expect_err("a malformed link");
    assert!(matches!(err, BlockError::LastCommit(_)), "{err}");
}
