// genesisSet: the set of height 1 from the exact genesis.json bytes, as the
// ledger derives it, with every proof of possession checked.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesToHex, genesisSet, sha3, validatorSetHash } from '../dist/verify.test-bundle.js';
import { CHAIN_ID, genesisText, keys, SET_A } from '../testkit/chain.js';

const text = genesisText();
const edit = (f) => {
  const g = JSON.parse(text);
  f(g);
  return JSON.stringify(g, null, 2);
};

test('set of height 1: floor(self_bond / power_reduction), power 0 left out, canonical order', () => {
  const g = genesisSet(text);
  assert.equal(g.chainId, CHAIN_ID);
  assert.deepEqual(g.set.validators.map((v) => [v.address, String(v.power)]), SET_A.map((v) => [v.address, v.power]));
  assert.ok(!g.set.validators.some((v) => v.address === keys[4].address), 'power 0 is not in the set');
  assert.deepEqual(g.set.hash, validatorSetHash(SET_A));
});

test('the genesis hash is SHA3-256 of the exact bytes', () => {
  const bytes = new TextEncoder().encode(text);
  assert.equal(genesisSet(text).genesisHash, bytesToHex(sha3(bytes)));
  assert.equal(genesisSet(bytes).genesisHash, bytesToHex(sha3(bytes)));
  // Same JSON, other bytes: another hash.
  assert.notEqual(genesisSet(text.replaceAll('\n', '\r\n')).genesisHash, genesisSet(text).genesisHash);
});

test('a proof of possession of another key is rejected', () => {
  const swapped = edit((g) => {
    [g.validators[0].proof_of_possession, g.validators[1].proof_of_possession] = [g.validators[1].proof_of_possession, g.validators[0].proof_of_possession];
  });
  assert.throws(() => genesisSet(swapped), { message: 'validators[0]: proof of possession does not verify' });
});

test('malformed keys and amounts are rejected', () => {
  const infinity = edit((g) => {
    g.validators[2].consensus_public_key = `c0${'00'.repeat(47)}`;
  });
  assert.throws(() => genesisSet(infinity), { message: 'validators[2]: public key is the point at infinity' });
  const short = edit((g) => {
    g.validators[1].proof_of_possession = 'abcd';
  });
  assert.throws(() => genesisSet(short), { message: 'validators[1].proof_of_possession: expected 96 bytes, got 2' });
  const bond = edit((g) => {
    g.validators[0].self_bond = '1e9';
  });
  assert.throws(() => genesisSet(bond), { message: 'validators[0].self_bond: "1e9" is not a decimal amount' });
  assert.throws(() => genesisSet(edit((g) => { g.params.power_reduction = '0'; })), { message: 'params.power_reduction must be positive' });
});

test('parameters: empty power_reduction is the default, max_validators keeps the most bonded', () => {
  const dflt = genesisSet(edit((g) => { g.params.power_reduction = ''; }));
  assert.deepEqual(dflt.set.validators.map((v) => String(v.power)).sort(), ['10', '20', '30', '30']);
  const two = genesisSet(edit((g) => { g.params.max_validators = 2; }));
  assert.deepEqual(two.set.validators.map((v) => String(v.power)), ['30', '30']);
});
