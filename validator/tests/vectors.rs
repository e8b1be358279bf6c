//! Conformance against the vectors in ../shared/test-vectors, computed from
//! DESIGN.md with an independent BLS implementation (py_ecc).

use agora_validator::certificate::{CertificateError, CommitCertificate};
use agora_validator::crypto::{PublicKey, SecretKey, Signature, vrf};
use agora_validator::lottery;
use agora_validator::signing;
use agora_validator::types::{Address, ChainId, VoteType};
use agora_validator::validator_set::{Validator, ValidatorSet};
use serde_json::Value;
use std::path::PathBuf;

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/test-vectors")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn h32(v: &Value) -> [u8; 32] {
    hx(v).try_into().expect("32 bytes")
}

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().expect("array")
}

#[test]
fn bls_vectors_keys_pop_address() {
    let d = load("bls.json");
    assert_eq!(
        d["ciphersuite"],
        "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
    );
    assert_eq!(
        d["ciphersuite"].as_str().unwrap().as_bytes(),
        agora_validator::crypto::bls::SIG_DST
    );
    assert_eq!(
        d["pop_dst"].as_str().unwrap().as_bytes(),
        agora_validator::crypto::bls::POP_DST
    );
    let keys = arr(&d["keys"]);
    assert!(!keys.is_empty());
    for k in keys {
        let sk = SecretKey::from_bytes(&hx(&k["secret_key"])).expect("secret key");
        let pk = sk.public_key();
        assert_eq!(pk.to_bytes().to_vec(), hx(&k["public_key"]));
        let pop = sk.prove_possession();
        assert_eq!(pop.to_bytes().to_vec(), hx(&k["pop"]));
        let decoded_pop = Signature::from_bytes(&hx(&k["pop"])).expect("pop decodes");
        pk.verify_possession(&decoded_pop).expect("pop verifies");
        assert_eq!(Address::of(&pk).to_string(), k["address"].as_str().unwrap());
    }
}

#[test]
fn bls_vectors_sign() {
    let d = load("bls.json");
    for case in arr(&d["sign"]) {
        let sk = SecretKey::from_bytes(&hx(&case["secret_key"])).expect("secret key");
        let msg = hx(&case["message"]);
        let sig = sk.sign(&msg);
        assert_eq!(sig.to_bytes().to_vec(), hx(&case["signature"]));
        sk.public_key().verify(&msg, &sig).expect("verifies");
    }
}

#[test]
fn bls_vectors_aggregate() {
    let d = load("bls.json");
    for case in arr(&d["aggregate"]) {
        let sigs: Vec<Signature> = arr(&case["signatures"])
            .iter()
            .map(|s| Signature::from_bytes(&hx(s)).expect("signature decodes"))
            .collect();
        let refs: Vec<&Signature> = sigs.iter().collect();
        let agg = Signature::aggregate(&refs).expect("aggregate");
        assert_eq!(agg.to_bytes().to_vec(), hx(&case["aggregate"]));
    }
}

#[test]
fn bls_vectors_fast_aggregate_verify() {
    let d = load("bls.json");
    let cases = arr(&d["fast_aggregate_verify"]);
    let mut saw_valid = false;
    let mut saw_invalid = false;
    for case in cases {
        let keys: Vec<PublicKey> = arr(&case["public_keys"])
            .iter()
            .map(|k| PublicKey::from_bytes(&hx(k)).expect("key decodes"))
            .collect();
        let refs: Vec<&PublicKey> = keys.iter().collect();
        let msg = hx(&case["message"]);
        let expected = case["valid"].as_bool().expect("valid flag");
        let got = match Signature::from_bytes(&hx(&case["signature"])) {
            Ok(sig) => sig.fast_aggregate_verify(&msg, &refs).is_ok(),
            Err(_) => false,
        };
        assert_eq!(got, expected, "case {case}");
        saw_valid |= expected;
        saw_invalid |= !expected;
    }
    assert!(saw_valid && saw_invalid, "vectors cover both outcomes");
}

#[test]
fn bls_vectors_deserialization() {
    let d = load("bls.json");
    for case in arr(&d["deserialization"]) {
        let bytes = hx(&case["bytes"]);
        let ok = match case["what"].as_str().unwrap() {
            "public_key" => PublicKey::from_bytes(&bytes).is_ok(),
            "signature" => Signature::from_bytes(&bytes).is_ok(),
            other => panic!("unknown kind {other}"),
        };
        assert_eq!(ok, case["valid"].as_bool().unwrap(), "{}", case["why"]);
    }
}

#[test]
fn agora_vectors_signing_bytes() {
    let d = load("agora.json");
    let chain = ChainId::new(d["chain_id"].as_str().unwrap()).expect("chain id");
    for case in arr(&d["signing_bytes"]) {
        let expected = hx(&case["bytes"]);
        let got = match case["kind"].as_str().unwrap() {
            kind @ ("prevote" | "precommit") => {
                let t = if kind == "prevote" {
                    VoteType::Prevote
                } else {
                    VoteType::Precommit
                };
                signing::vote_bytes(
                    &chain,
                    t,
                    case["height"].as_u64().unwrap(),
                    case["round"].as_u64().unwrap() as u32,
                    &h32(&case["block_hash"]),
                )
            }
            "proposal" => signing::proposal_bytes(
                &chain,
                case["height"].as_u64().unwrap(),
                case["round"].as_u64().unwrap() as u32,
                case["pol_round"].as_i64().unwrap() as i32,
                &h32(&case["block_hash"]),
            ),
            "tx" => signing::tx_bytes(&chain, &h32(&case["body_hash"])),
            other => panic!("unknown kind {other}"),
        };
        assert_eq!(hex::encode(got), hex::encode(expected), "{}", case["kind"]);
    }
}

#[test]
fn agora_vectors_vrf_and_seed_chain() {
    let d = load("agora.json");
    let chain = ChainId::new(d["chain_id"].as_str().unwrap()).expect("chain id");
    let mut prev: Option<[u8; 32]> = None;
    for case in arr(&d["vrf"]) {
        let h = case["height"].as_u64().unwrap();
        let prev_seed = h32(&case["prev_seed"]);
        if let Some(p) = prev {
            assert_eq!(p, prev_seed, "vectors chain seeds");
        }
        assert_eq!(
            signing::vrf_input(&chain, h, &prev_seed),
            hx(&case["input"])
        );
        let sk = SecretKey::from_bytes(&hx(&case["secret_key"])).expect("key");
        assert_eq!(sk.public_key().to_bytes().to_vec(), hx(&case["public_key"]));
        let proof = vrf::prove(&sk, &chain, h, &prev_seed);
        assert_eq!(proof.to_bytes().to_vec(), hx(&case["proof"]));
        let out = vrf::verify(&sk.public_key(), &chain, h, &prev_seed, &proof).expect("verifies");
        assert_eq!(out, h32(&case["output"]));
        let next = vrf::next_seed(&prev_seed, &out);
        assert_eq!(next, h32(&case["next_seed"]));
        // The proof does not verify for another height.
        assert!(vrf::verify(&sk.public_key(), &chain, h + 1, &prev_seed, &proof).is_err());
        prev = Some(next);
    }
    let g = &d["genesis_seed_example"];
    assert_eq!(
        vrf::genesis_seed(&h32(&g["genesis_file_hash"])),
        h32(&g["seed0"])
    );
}

#[test]
fn agora_vectors_lottery() {
    let d = load("agora.json");
    for case in arr(&d["lottery"]) {
        let vals = arr(&case["validators"]);
        let mut entries: Vec<(Address, u64)> = vals
            .iter()
            .map(|v| {
                (
                    Address::from_hex(v["address"].as_str().unwrap()).expect("address"),
                    v["power"].as_u64().unwrap(),
                )
            })
            .collect();
        entries.sort();
        let total: u64 = entries.iter().map(|e| e.1).sum();
        let x = lottery::draw(
            &h32(&case["prev_seed"]),
            case["height"].as_u64().unwrap(),
            case["round"].as_u64().unwrap() as u32,
        );
        let i = lottery::pick_index(entries.iter().map(|e| e.1), lottery::target(x, total));
        assert_eq!(entries[i].0.to_string(), case["proposer"].as_str().unwrap());
    }
}

/// Vectors whose expected outcome contradicts DESIGN.md. We follow the design
/// and record the disagreement here (see the closing note of issue 2):
/// `certificate[1]` (bitmap 0x0b, validators 0, 1 and 3, 70 of 100 power) is
/// marked invalid, but its aggregate signature is exactly the sum of those
/// three validators' precommit signatures over (5, 1, block_hash), and 70 > 2/3
/// of 100, so by DESIGN §7 the certificate is valid.
const DISAGREEING_CERTIFICATE_VECTORS: &[usize] = &[1];

/// Secret keys known from the vector files, by public key hex.
fn known_secret_keys() -> std::collections::BTreeMap<String, SecretKey> {
    let mut out = std::collections::BTreeMap::new();
    let bls = load("bls.json");
    let agora = load("agora.json");
    for k in arr(&bls["keys"]).iter().chain(arr(&agora["vrf"])) {
        let sk = SecretKey::from_bytes(&hx(&k["secret_key"])).expect("key");
        out.insert(hex::encode(sk.public_key().to_bytes()), sk);
    }
    out
}

#[test]
fn agora_vectors_certificates() {
    let d = load("agora.json");
    let chain = ChainId::new(d["chain_id"].as_str().unwrap()).expect("chain id");
    let secrets = known_secret_keys();
    let mut disagreements = Vec::new();
    for (n, case) in arr(&d["certificate"]).iter().enumerate() {
        let vals: Vec<Validator> = arr(&case["validators"])
            .iter()
            .map(|v| {
                let pk = PublicKey::from_bytes(&hx(&v["public_key"])).expect("key");
                let val = Validator::new(pk, v["power"].as_u64().unwrap());
                assert_eq!(val.address.to_string(), v["address"].as_str().unwrap());
                val
            })
            .collect();
        let set = ValidatorSet::new(vals).expect("set");
        assert_eq!(set.total_power(), case["total_power"].as_u64().unwrap());
        let cert = CommitCertificate::from_proto(&agora_proto::v1::CommitCertificate {
            height: case["height"].as_u64().unwrap(),
            round: case["round"].as_u64().unwrap() as u32,
            block_hash: hx(&case["block_hash"]),
            signers: hx(&case["signers_bitmap"]),
            aggregate_signature: hx(&case["aggregate_signature"]),
        })
        .expect("decodes");
        let signed = cert.signed_power(&set).expect("bitmap in range");
        assert_eq!(signed, case["signed_power"].as_u64().unwrap());

        // Independent oracle: re-sign the precommit with the signers' secret
        // keys and compare the aggregate with the one in the vector.
        let msg = signing::vote_bytes(
            &chain,
            VoteType::Precommit,
            cert.height,
            cert.round,
            &cert.block_hash,
        );
        let sigs: Vec<Signature> = cert
            .signer_indices(set.len())
            .expect("in range")
            .iter()
            .map(|i| {
                let pk = hex::encode(set.validators()[*i].public_key.to_bytes());
                secrets.get(&pk).expect("vector keys are known").sign(&msg)
            })
            .collect();
        let refs: Vec<&Signature> = sigs.iter().collect();
        let genuine = Signature::aggregate(&refs).expect("signers") == cert.aggregate_signature;
        let design_valid = genuine && set.is_quorum(signed);

        let res = cert.verify(&chain, &set);
        assert_eq!(res.is_ok(), design_valid, "case {n}: {res:?}");
        if !design_valid {
            assert_eq!(res, Err(CertificateError::BadSignature));
        }
        if design_valid != case["valid"].as_bool().unwrap() {
            disagreements.push(n);
        }
    }
    assert_eq!(
        disagreements, DISAGREEING_CERTIFICATE_VECTORS,
        "certificate vectors that contradict DESIGN §7 changed"
    );
}
