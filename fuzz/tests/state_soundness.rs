//! The state targets' assertions can fail: honest answers pass the real
//! checks, the seeded lies are refused by them, and the same lies are
//! caught by the targets' soundness assertions when the check is weakened
//! (negative controls).

use agora_fuzz::state_targets::{check_proof, check_sync, proof_inputs, state_world, sync_inputs};
use agora_proto::v1 as pb;
use agora_validator::ledger::merkle::chunks::{verify_chunk, verify_manifest};
use agora_validator::ledger::merkle::proof::verify;
use prost::Message;
use std::path::Path;

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The key and proof of a `state_proof` input.
fn proof_of(input: &[u8]) -> (Vec<u8>, pb::StateProof) {
    let w = state_world();
    let key = w.keys[usize::from(input[0]) % w.keys.len()].clone();
    (key, pb::StateProof::decode(&input[1..]).expect("a proof"))
}

#[test]
fn every_key_is_proven_present_or_absent_as_the_state_holds_it() {
    let w = state_world();
    let inputs = proof_inputs();
    assert_eq!(inputs.len(), w.keys.len());
    let mut absent = 0;
    for (name, input) in &inputs {
        let (key, proof) = proof_of(input);
        verify(&proof, &key, &w.root).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(proof.present, w.leaves.contains_key(&key), "{name}");
        absent += usize::from(!proof.present);
        agora_fuzz::state_targets::state_proof(input);
    }
    assert_eq!(absent, 5, "the world asks about five absent keys");
}

#[test]
fn lying_proofs_are_refused_and_a_verifier_that_believes_absence_is_caught() {
    let w = state_world();
    for lie in ["key_00_longer_value", "key_00_claimed_absent"] {
        let (key, proof) = proof_of(&seed("state_proof", lie));
        assert!(verify(&proof, &key, &w.root).is_err(), "{lie} verified");
    }
    // Negative control: a verifier that takes any claim of absence on
    // trust lets `claimed_absent` through, and the target's assertion fires.
    let believes_absence =
        |p: &pb::StateProof, k: &[u8], r: &_| !p.present || verify(p, k, r).is_ok();
    let lie = seed("state_proof", "key_00_claimed_absent");
    let caught = std::panic::catch_unwind(|| check_proof(&lie, believes_absence));
    assert!(caught.is_err(), "the target did not catch a false absence");
    let honest = seed("state_proof", "key_00");
    check_proof(&honest, believes_absence);
}

#[test]
fn served_chunks_pass_and_changed_ones_are_refused_or_caught() {
    let w = state_world();
    for (name, input) in sync_inputs() {
        let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
        let m = pb::SnapshotManifest::decode(&input[2..2 + len]).expect("manifest");
        let r = pb::ChunkResponse::decode(&input[2 + len..]).expect("chunk");
        verify_manifest(&m, &w.root).unwrap_or_else(|e| panic!("{name}: {e}"));
        verify_chunk(&m, r.index, &r.leaves).unwrap_or_else(|e| panic!("{name}: {e}"));
        agora_fuzz::state_targets::state_sync(&input);
    }
    let changed = seed("state_sync", "changed_value");
    let left_out = seed("state_sync", "leaf_left_out");
    agora_fuzz::state_targets::state_sync(&changed);
    agora_fuzz::state_targets::state_sync(&left_out);
    // Negative control: a check that looks only at the chunk index
    // accepts both, and the target's assertions fire.
    let index_only =
        |m: &pb::SnapshotManifest, i: u32, _: &[pb::StateLeaf]| (i as usize) < m.chunks.len();
    for lie in [changed, left_out] {
        let caught = std::panic::catch_unwind(|| check_sync(&lie, index_only));
        assert!(caught.is_err(), "the target did not catch a changed chunk");
    }
}

#[test]
fn the_chains_light_blocks_pass_and_a_step_that_skips_the_certificate_is_caught() {
    use agora_fuzz::light_target::{check_light_block, light_block, light_input};
    use agora_validator::block::header_hash;
    use agora_validator::light_client::{LightBlock, LightError, Trusted};
    let blocks = &agora_fuzz::fixtures::world().light_blocks;
    assert_eq!(blocks.len(), 3);
    let w = agora_fuzz::fixtures::world();
    for b in blocks {
        let genesis = Trusted::from_genesis(w.set.clone());
        agora_validator::light_client::verify_step(&w.chain, &genesis, b)
            .unwrap_or_else(|e| panic!("block {}: {e}", b.header.height));
        light_block(&light_input(b));
    }
    // Block 1's header carried by block 2's certificate: refused.
    let lie = seed("light_block", "other_certificate");
    light_block(&lie);
    // Negative control: a step that checks the header names the trusted
    // set but not that the certificate signs this header accepts the lie,
    // and the target's assertion fires.
    let header_only = |_: &agora_validator::ChainId, t: &Trusted, b: &LightBlock| {
        if b.header.validators_hash == t.next_validators_hash {
            Ok(Trusted {
                height: b.header.height,
                block_hash: header_hash(&b.header),
                validators: b.validators.clone(),
                next_validators_hash: b.header.next_validators_hash.clone(),
            })
        } else {
            Err(LightError::Header {
                height: b.header.height,
                what: String::new(),
            })
        }
    };
    let mut forged = blocks[0].clone();
    forged.header.time_ms += 1;
    let caught = std::panic::catch_unwind(|| check_light_block(&light_input(&forged), header_only));
    assert!(caught.is_err(), "the target did not catch a forged header");
}
