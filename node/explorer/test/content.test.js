// The block page's content check: the header shown must be the certified
// one, and the transaction and evidence lists must hash to its commitments.
// Each way a node could doctor a list fails with its reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesToHex, checkBlockContent, listHash, sha3 } from '../dist/verify.test-bundle.js';
import { encodeHeader } from '../testkit/proto_writer.js';

const txs = [Uint8Array.of(1, 2, 3), Uint8Array.of(4, 5)];
const evidence = [Uint8Array.of(9, 9, 9, 9)];

function block() {
  const headerBytes = encodeHeader({
    chain_id: 'c', height: 7n, txs_hash: listHash(txs), evidence_hash: listHash(evidence), time_ms: 1n,
  });
  return {
    certified: bytesToHex(sha3(headerBytes)),
    served: {
      header_bytes: bytesToHex(headerBytes),
      txs_total: txs.length,
      txs: txs.map((t) => ({ hash: bytesToHex(sha3(t)) })),
      txs_encoded: txs.map(bytesToHex),
      evidence: evidence.map((e) => ({ hash: bytesToHex(sha3(e)) })),
      evidence_encoded: evidence.map(bytesToHex),
    },
  };
}

test('an honest block matches its certified header', () => {
  const { certified, served } = block();
  assert.deepEqual(checkBlockContent(served, certified), { ok: true });
  // A long list shown in part is still checked whole.
  served.txs.pop();
  assert.deepEqual(checkBlockContent(served, certified), { ok: true });
  // The empty list's commitment is SHA3-256 of nothing, as in the node.
  assert.equal(bytesToHex(listHash([])), 'a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a');
});

const cases = [
  ['another header', (b) => { b.header_bytes = b.header_bytes.replace(/..$/, '02'); }, /is not the certified block/],
  ['a dropped transaction', (b) => { b.txs_encoded.pop(); b.txs.pop(); b.txs_total = 1; }, /transactions hash to/],
  ['reordered transactions', (b) => { b.txs_encoded.reverse(); b.txs.reverse(); }, /transactions hash to/],
  ['an altered evidence byte', (b) => { b.evidence_encoded[0] = '09090908'; }, /evidence hash to/],
  ['a shown item that is not the committed one', (b) => { b.txs[1].hash = '00'.repeat(32); }, /transactions #1 shown is not the one committed/],
  ['a count unlike the list', (b) => { b.txs_total = 5; }, /counts 5 transactions but served 2/],
  ['more shown than committed', (b) => { b.evidence.push({ hash: '11'.repeat(32) }); }, /2 evidence shown, 1 committed/],
  ['no encoded list', (b) => { delete b.evidence_encoded; }, /did not serve the encoded evidence/],
];

for (const [name, tamper, reason] of cases) {
  test(`negative control: ${name}`, () => {
    const { certified, served } = block();
    tamper(served);
    const r = checkBlockContent(served, certified);
    assert.equal(r.ok, false, name);
    assert.match(r.reason, reason);
  });
}
