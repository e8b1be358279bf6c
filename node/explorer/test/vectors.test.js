// Every vector of shared/test-vectors that the explorer's verifier covers:
// keys and proofs of possession, signing (used to build test chains),
// aggregation, FastAggregateVerify, rejected encodings, precommit signing
// bytes and certificates.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  addressOf, bls12_381, bytesToHex, fastAggregateVerify, hexToBytes, POP_DST, precommitSigningBytes,
  publicKeyFromBytes, SIG_DST, signatureFromBytes, verifyCommit, verifyPossession,
} from '../dist/verify.test-bundle.js';
import { agora, bls } from '../testkit/vectors.js';

const sigs = bls12_381.longSignatures;

test('ciphersuite tags match DESIGN §4', () => {
  assert.equal(bls.ciphersuite, SIG_DST);
  assert.equal(bls.pop_dst, POP_DST);
});

test('keys: public key, address and proof of possession', () => {
  for (const k of bls.keys) {
    const pk = hexToBytes(k.public_key);
    assert.equal(bytesToHex(sigs.getPublicKey(hexToBytes(k.secret_key)).toBytes()), k.public_key);
    assert.equal(bytesToHex(addressOf(pk)), k.address);
    assert.equal(verifyPossession(pk, hexToBytes(k.pop)), true, k.address);
  }
  // A proof belongs to its key only.
  assert.equal(verifyPossession(hexToBytes(bls.keys[0].public_key), hexToBytes(bls.keys[1].pop)), false);
  // A plain signature of the key bytes (signature DST) is not a proof of possession.
  const k = bls.keys[0];
  const plain = sigs.sign(sigs.hash(hexToBytes(k.public_key), SIG_DST), hexToBytes(k.secret_key)).toBytes();
  assert.equal(verifyPossession(hexToBytes(k.public_key), plain), false);
});

test('sign: the test chains sign exactly as the reference library', () => {
  for (const v of bls.sign) {
    const sig = sigs.sign(sigs.hash(hexToBytes(v.message), SIG_DST), hexToBytes(v.secret_key));
    assert.equal(bytesToHex(sig.toBytes()), v.signature);
  }
});

test('aggregate signatures', () => {
  for (const v of bls.aggregate) {
    assert.equal(bytesToHex(sigs.aggregateSignatures(v.signatures.map(hexToBytes)).toBytes()), v.aggregate);
  }
});

test('FastAggregateVerify', () => {
  for (const [i, v] of bls.fast_aggregate_verify.entries()) {
    const keys = v.public_keys.map((k) => publicKeyFromBytes(hexToBytes(k)));
    const ok = fastAggregateVerify(keys, hexToBytes(v.message), signatureFromBytes(hexToBytes(v.signature)));
    assert.equal(ok, v.valid, `case ${i}`);
  }
  assert.equal(fastAggregateVerify([], new Uint8Array(0), signatureFromBytes(hexToBytes(bls.aggregate[0].aggregate))), false);
});

test('deserialization: infinity and non-subgroup points are rejected', () => {
  for (const v of bls.deserialization) {
    const decode = v.what === 'public_key' ? publicKeyFromBytes : signatureFromBytes;
    if (v.valid) assert.doesNotThrow(() => decode(hexToBytes(v.bytes)), v.why);
    else assert.throws(() => decode(hexToBytes(v.bytes)), Error, v.why);
  }
  // Uncompressed encodings are valid elsewhere but not in Agora.
  const uncompressed = sigs.getPublicKey(hexToBytes(bls.keys[0].secret_key)).toBytes(false);
  assert.throws(() => publicKeyFromBytes(uncompressed), /must be 48 bytes/);
});

test('precommit signing bytes', () => {
  const precommits = agora.signing_bytes.filter((v) => v.kind === 'precommit');
  assert.ok(precommits.length > 0);
  for (const v of precommits) {
    const bytes = precommitSigningBytes(agora.chain_id, v.height, v.round, hexToBytes(v.block_hash));
    assert.equal(bytesToHex(bytes), v.bytes);
  }
});

// Vectors whose expected outcome contradicts DESIGN §7; like
// validator/tests/vectors.rs we follow the design and name them here.
// certificate[1] (bitmap 0x0b: validators 0, 1 and 3, 70 of 100 power) is
// marked invalid, yet its signature is exactly the aggregate of those three
// validators' precommits and 70 > 2/3 of 100, so by §7 it is valid.
const DISAGREEING_CERTIFICATE_VECTORS = [1];

test('certificates (DESIGN §7, with an independent re-signing oracle)', () => {
  const secrets = new Map([...bls.keys, ...agora.vrf].map((k) => [k.public_key, hexToBytes(k.secret_key)]));
  const disagreements = [];
  for (const [i, v] of agora.certificate.entries()) {
    const cert = { height: v.height, round: v.round, block_hash: v.block_hash, signers: v.signers_bitmap, aggregate_signature: v.aggregate_signature };
    const r = verifyCommit(cert, v.validators, agora.chain_id);
    assert.equal(r.signedPower, BigInt(v.signed_power), `case ${i}`);
    assert.equal(r.totalPower, BigInt(v.total_power), `case ${i}`);
    // Oracle: sign the precommit with the signers' secret keys and aggregate.
    const msg = sigs.hash(precommitSigningBytes(agora.chain_id, v.height, v.round, hexToBytes(v.block_hash)), SIG_DST);
    const own = v.validators.filter((_, j) => r.signers[j]).map((x) => sigs.sign(msg, secrets.get(x.public_key)));
    const genuine = bytesToHex(sigs.aggregateSignatures(own).toBytes()) === v.aggregate_signature;
    const designValid = genuine && 3n * r.signedPower > 2n * r.totalPower;
    assert.equal(r.ok, designValid, `case ${i}: ${r.reason}`);
    if (!designValid) assert.equal(r.reason, 'aggregate signature does not verify (FastAggregateVerify failed)');
    if (designValid !== v.valid) disagreements.push(i);
  }
  assert.deepEqual(disagreements, DISAGREEING_CERTIFICATE_VECTORS, 'certificate vectors that contradict DESIGN §7 changed');
});
