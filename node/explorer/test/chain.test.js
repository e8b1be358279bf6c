// ChainWalker over a synthetic chain with a validator-set change at height 4:
// every height verifies from genesis alone, and each way a node can lie fails
// with its exact reason.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { bytesToHex, ChainWalker, FetchError, sha3, validatorSetHash, verifyCertificate } from '../dist/verify.test-bundle.js';
import { buildChain, CHAIN_ID, certify, gateway, SET_A, SET_B, TOP } from '../testkit/chain.js';

let honest;
before(() => {
  honest = buildChain();
});

// A fresh copy to tamper with, and a walker over it.
function setup(tamper = () => {}) {
  const chain = structuredClone(honest);
  tamper(chain);
  const fetchFn = gateway(chain);
  return { chain, fetchFn, walker: new ChainWalker(fetchFn) };
}

const hashA = bytesToHex(validatorSetHash(SET_A));
const hashB = bytesToHex(validatorSetHash(SET_B));

test('every height verifies across the set change, trusting only genesis', async () => {
  const { walker } = setup();
  for (let h = TOP; h >= 1; h--) {
    const r = await walker.verifyHeight(h);
    assert.equal(r.ok, true, `height ${h}: ${r.reason}`);
    const set = h < 4 ? SET_A : SET_B;
    assert.deepEqual(r.validators.map((v) => v.address), set.map((v) => v.address));
    assert.equal(r.totalPower, h < 4 ? 90n : 115n);
    assert.equal(r.signedPower, h < 4 ? 80n : 90n);
    assert.equal(r.signers.filter(Boolean).length, 3);
  }
  assert.equal(walker.genesisHash, bytesToHex(sha3(new TextEncoder().encode(honest.genesis))));
});

test('the set change is crossed through certificate 3 and the set of 4, once', async () => {
  const { fetchFn, walker } = setup();
  assert.equal((await walker.verifyHeight(6)).ok, true);
  assert.equal((await walker.verifyHeight(7)).ok, true);
  assert.match(fetchFn.paths.join(' '), /\/api\/certificate\/3 \/api\/validator_set\/4 \/api\/certificate\/6/);
  assert.equal(fetchFn.paths.filter((p) => p === '/api/validator_set/4').length, 1);
});

test('negative: a flipped bit in the aggregate signature', async () => {
  // The compression sign bit: still a valid G2 point, but the wrong one.
  const { walker } = setup((c) => {
    const sig = c.certs.get(5).aggregate_signature;
    c.certs.get(5).aggregate_signature = (parseInt(sig.slice(0, 2), 16) ^ 0x20).toString(16).padStart(2, '0') + sig.slice(2);
  });
  const r = await walker.verifyHeight(5);
  assert.equal(r.ok, false);
  assert.equal(r.reason, 'aggregate signature does not verify (FastAggregateVerify failed)');
  assert.equal((await walker.verifyHeight(6)).ok, true);
});

test('negative: a flipped low bit makes the signature undecodable', async () => {
  const { walker } = setup((c) => {
    const sig = c.certs.get(5).aggregate_signature;
    c.certs.get(5).aggregate_signature = sig.slice(0, -2) + (parseInt(sig.slice(-2), 16) ^ 1).toString(16).padStart(2, '0');
  });
  const r = await walker.verifyHeight(5);
  assert.match(r.reason, /^aggregate signature is malformed: signature is not a point of the G2 subgroup$/);
});

test('negative: a tampered header byte', async () => {
  let tampered;
  const { walker } = setup((c) => {
    const bytes = c.headers.get(5);
    bytes[bytes.length - 1] ^= 0x02; // proposal_round 1 → 3: still a well-formed header
    tampered = bytesToHex(sha3(bytes));
  });
  const r = await walker.verifyHeight(5);
  assert.equal(r.reason, `certificate block_hash ${honest.certs.get(5).block_hash} is not the header's hash ${tampered}`);
});

test('negative: a hidden set change', async () => {
  const { walker } = setup((c) => {
    c.changes = [];
  });
  assert.equal((await walker.verifyHeight(3)).ok, true);
  const r = await walker.verifyHeight(5);
  assert.equal(r.reason, `header validators_hash ${hashB} does not match the trusted validator set ${hashA}`);
});

test('negative: a served set whose hash is wrong (the served "hash" field is ignored)', async () => {
  let wrong;
  const { walker } = setup((c) => {
    const set = c.sets.get(4).map((v) => ({ ...v }));
    set[0].power = String(Number(set[0].power) + 1);
    c.sets.set(4, set);
    wrong = bytesToHex(validatorSetHash(set));
  });
  assert.equal((await walker.verifyHeight(3)).ok, true);
  const r = await walker.verifyHeight(5);
  assert.equal(r.reason, `validator-set change at height 4: validator set served for height 4 hashes to ${wrong}, but header 3 commits to ${hashB}`);
  // Every later height fails the same way; earlier ones still verify.
  assert.equal((await walker.verifyHeight(7)).reason, r.reason);
  assert.equal((await walker.verifyHeight(2)).ok, true);
});

test('negative: signed power not above 2/3 (exactly 2/3)', async () => {
  // The two validators of power 30 in set A: 60 of 90, a genuine signature.
  const thirties = SET_A.map((v, i) => (v.power === '30' ? i : -1)).filter((i) => i >= 0);
  const { walker } = setup((c) => {
    const cert = c.certs.get(2);
    c.certs.set(2, certify(SET_A, 2, cert.round, Buffer.from(cert.block_hash, 'hex'), thirties));
  });
  const r = await walker.verifyHeight(2);
  assert.equal(r.reason, 'signed power 60 is not more than 2/3 of total power 90');
  assert.equal(r.signedPower, 60n);
});

test('negative: a bitmap bit past n, and a bitmap of the wrong length', async () => {
  const past = setup((c) => {
    c.certs.get(2).signers = (parseInt(c.certs.get(2).signers, 16) | 0x20).toString(16).padStart(2, '0');
  });
  assert.equal((await past.walker.verifyHeight(2)).reason, 'signers bitmap sets bit 5, past the 4 validators');
  const long = setup((c) => {
    c.certs.get(2).signers += '00';
  });
  assert.equal((await long.walker.verifyHeight(2)).reason, 'signers bitmap is 2 bytes, expected 1 for 4 validators');
});

test('negative: a bad certificate before the change fails every height from the change on', async () => {
  const { walker } = setup((c) => {
    c.certs.get(3).signers = '01';
  });
  const r = await walker.verifyHeight(6);
  assert.equal(r.reason, `validator-set change at height 4: certificate of height 3: signed power ${SET_A[0].power} is not more than 2/3 of total power 90`);
  assert.equal((await walker.verifyHeight(1)).ok, true);
});

test('negative: header 1 of another genesis', async () => {
  const { walker } = setup((c) => {
    c.genesis = c.genesis.replace('"max_validators": 100', '"max_validators": 2'); // another set of height 1
  });
  const r = await walker.verifyHeight(2);
  assert.equal(r.reason, 'header 1 validators_hash does not match the genesis validator set');
});

test('negative: a genesis with an invalid proof of possession fails every height', async () => {
  const { walker } = setup((c) => {
    const g = JSON.parse(c.genesis);
    g.validators[0].proof_of_possession = g.validators[1].proof_of_possession;
    c.genesis = JSON.stringify(g);
  });
  assert.equal((await walker.verifyHeight(1)).reason, 'genesis: validators[0]: proof of possession does not verify');
  assert.match(walker.genesisHash, /^[0-9a-f]{64}$/, 'the hash is still shown, to compare');
});

test('negative: the node serves another height\'s header', async () => {
  const { walker } = setup((c) => {
    c.headers.set(5, c.headers.get(6));
    c.certs.set(5, c.certs.get(6));
  });
  assert.equal((await walker.verifyHeight(5)).reason, 'the node served header 6 for height 5');
});

test('verifyCertificate: height and chain checks', () => {
  const header = honest.headers.get(2);
  const cert = { ...honest.certs.get(2) };
  assert.equal(verifyCertificate(header, cert, SET_A, CHAIN_ID).ok, true);
  assert.equal(verifyCertificate(header, { ...cert, height: 3 }, SET_A, CHAIN_ID).reason, 'certificate height 3 does not match header height 2');
  assert.equal(verifyCertificate(header, cert, SET_A, 'other').reason, `header chain_id "${CHAIN_ID}" is not "other"`);
  assert.equal(verifyCertificate(header, cert, SET_B, CHAIN_ID).reason, `header validators_hash ${hashA} does not match the trusted validator set ${hashB}`);
  assert.match(verifyCertificate(header.subarray(0, 5), cert, SET_A, CHAIN_ID).reason, /^header bytes do not decode: /);
});

test('a missing reply is a FetchError (retry later), not a failed verification', async () => {
  const { walker } = setup();
  await assert.rejects(walker.verifyHeight(TOP + 1), (e) => e instanceof FetchError && e.message === `height ${TOP + 1} is not committed yet (latest ${TOP})`);
  const { walker: other } = setup((c) => c.certs.delete(TOP));
  await assert.rejects(other.verifyHeight(TOP), (e) => e instanceof FetchError && /HTTP 404: no such resource/.test(e.message));
  assert.equal((await walker.verifyHeight(TOP)).ok, true);
});

test('set changes learnt after the first walk are fetched again for later heights', async () => {
  // The node at height 3 (a set change at 4 not listed yet), then at TOP.
  const { chain, walker } = setup((c) => {
    c.changes = [];
    c.latest = 3;
  });
  assert.equal((await walker.verifyHeight(2)).ok, true);
  await assert.rejects(walker.verifyHeight(5), FetchError);
  chain.changes = [4];
  chain.latest = TOP;
  assert.equal((await walker.verifyHeight(5)).ok, true);
});
