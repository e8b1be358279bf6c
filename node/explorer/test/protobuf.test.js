// decodeHeader: every field round-trips, malformed input is an error, and no
// input makes it loop or hang.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockHash, bytesToHex, decodeHeader, sha3 } from '../dist/verify.test-bundle.js';
import { encodeHeader } from '../testkit/proto_writer.js';

const full = {
  chain_id: 'agora-testnet', height: 300n, parent_hash: sha3(Uint8Array.of(1)), proposer_address: new Uint8Array(20).fill(7),
  vrf_proof: new Uint8Array(96).fill(9), txs_hash: sha3(Uint8Array.of(2)), evidence_hash: sha3(Uint8Array.of(3)),
  last_commit_hash: sha3(Uint8Array.of(4)), app_hash: sha3(Uint8Array.of(5)), validators_hash: sha3(Uint8Array.of(6)),
  next_validators_hash: sha3(Uint8Array.of(7)), time_ms: 1764644000123n, proposal_round: 3,
};

test('every Header field round-trips', () => {
  const bytes = encodeHeader(full);
  assert.deepEqual(decodeHeader(bytes), full);
  assert.equal(bytesToHex(blockHash(bytes)), bytesToHex(sha3(bytes)));
});

test('absent fields take proto3 defaults; u64 beyond 2^53 stays exact', () => {
  const h = decodeHeader(encodeHeader({ height: (1n << 64n) - 1n }));
  assert.equal(h.height, (1n << 64n) - 1n);
  assert.equal(h.chain_id, '');
  assert.equal(h.proposal_round, 0);
  assert.deepEqual(h.app_hash, new Uint8Array(0));
});

test('unknown fields are skipped', () => {
  const extra = Uint8Array.of(0x70, 0x05, 0x7a, 0x02, 0xaa, 0xbb, 0x7d, 1, 2, 3, 4, 0x79, 1, 2, 3, 4, 5, 6, 7, 8);
  const bytes = new Uint8Array([...encodeHeader(full), ...extra]);
  assert.deepEqual(decodeHeader(bytes), full);
});

test('malformed input is rejected with a reason', () => {
  const cases = [
    [Uint8Array.of(0x10), /truncated varint/],
    [Uint8Array.of(0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), /longer than 10 bytes/],
    [Uint8Array.of(0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), /exceeds 64 bits/],
    [Uint8Array.of(0x1a, 0x05, 1, 2), /length past end/],
    [Uint8Array.of(0x12, 0x01), /height: wire type 2/],
    [Uint8Array.of(0x68, 0x80, 0x80, 0x80, 0x80, 0x10), /proposal_round: exceeds 32 bits/],
    [Uint8Array.of(0x0a, 0x02, 0xc3, 0x28), /./], // chain_id not UTF-8
    [Uint8Array.of(0x00), /field number 0/],
    [Uint8Array.of(0x7b), /wire type 3/], // groups are not supported
    [Uint8Array.of(0x7d, 1, 2), /truncated field/],
  ];
  for (const [bytes, reason] of cases) assert.throws(() => decodeHeader(bytes), reason, bytesToHex(bytes));
});

test('random and truncated inputs terminate (return or throw)', () => {
  const good = encodeHeader(full);
  for (let cut = 0; cut < good.length; cut++) {
    try { decodeHeader(good.subarray(0, cut)); } catch { /* rejection is fine */ }
  }
  let seed = sha3(Uint8Array.of(42));
  for (let i = 0; i < 2000; i++) {
    seed = sha3(seed);
    try { decodeHeader(seed.subarray(0, seed[0] % 33)); } catch { /* rejection is fine */ }
  }
});
