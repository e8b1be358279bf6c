// Serves the page and the JSON gateway of the synthetic test chain on
// 127.0.0.1, to work on the page without a node: `node testkit/mock-gateway.mjs
// [port] [--bad-height=H]` (the second flips a bit in the signature of H, to
// see a failed verification). Needs no node_modules.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { bytesToHex, validatorSetHash } from '../dist/verify.test-bundle.js';
import { buildChain, CHAIN_ID, gateway, keys, setAt, TOP } from './chain.js';

const port = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 8099);
const bad = Number(process.argv.find((a) => a.startsWith('--bad-height='))?.split('=')[1]);
const chain = buildChain();
if (bad) {
  const sig = chain.certs.get(bad).aggregate_signature; // flip the compression sign bit
  chain.certs.get(bad).aggregate_signature = (parseInt(sig[0], 16) ^ 2).toString(16) + sig.slice(1);
}
const chainFetch = gateway(chain);
const file = (p) => readFileSync(new URL(`../${p}`, import.meta.url));
const STATIC = { '/': ['static/index.html', 'text/html'], '/style.css': ['static/style.css', 'text/css'], '/app.js': ['dist/app.js', 'text/javascript'] };

const record = (v, i) => ({
  address: v.address, operator: bytesToHex(new Uint8Array(20).fill(i + 1)), consensus_public_key: v.public_key,
  tokens: `${v.power}000000`, shares: `${v.power}000000`, power: v.power, jailed: i === 3, tombstoned: false, jailed_until: i === 3 ? 700 : 0,
  active: i !== 3, commission_rate_bps: 500, missed_blocks: i, window_counted: TOP, outstanding_rewards: '1234',
});
const validators = setAt(TOP).map(record);
const slash = { validator: validators[3].address, infraction_height: 2, slash_height: 3, amount: '1500000', fraction_bps: 500,
  evidence_hash: bytesToHex(new Uint8Array(32).fill(0xee)), tombstoned: true, reason: 'double_sign', from_bonded: '1500000', from_unbonding: '0', from_redelegations: '0' };
const block = (h) => ({ height: h, block_hash: chain.certs.get(h).block_hash, proposer_address: setAt(h)[1].address, time_ms: 1764640000000 + h * 1000,
  txs: h === 3 ? 1 : 0, evidence: h === 3 ? 1 : 0 });

const API = [
  [/^\/api\/status$/, () => ({ chain_id: CHAIN_ID, latest_height: TOP, latest_block_hash: block(TOP).block_hash, round: 0, peers: 3 })],
  [/^\/api\/blocks$/, () => ({ latest_height: TOP, blocks: Array.from({ length: TOP }, (_, i) => block(TOP - i)) })],
  [/^\/api\/block\/(\d+)$/, async (h) => chain.headers.has(h) && ({
    ...block(h), ...(await (await chainFetch(`/api/certificate/${h}`)).json()),
    txs: h === 3 ? [{ hash: 'ab'.repeat(32), sender: keys[0].address, nonce: 0, kind: 'bond', body: { validator: validators[0].address, amount: '5000000' },
      fee: '1000', status: 'failed', log: 'insufficient balance' }] : [],
    evidence: h === 3 ? [{ kind: 'duplicate_vote', offenders: [validators[3].address], height: 2, round: 0, hash: slash.evidence_hash }] : [],
  })],
  [/^\/api\/validators$/, () => ({ validators })],
  [/^\/api\/validator\/([0-9a-f]{40})$/, (a) => validators.find((v) => v.address === a) && { validator: validators.find((v) => v.address === a), slashing_events: a === slash.validator ? [slash] : [] }],
  [/^\/api\/delegator\/([0-9a-f]{40})$/, (a) => ({ account: { address: a, balance: '99000000', nonce: 2 },
    delegations: [{ validator: validators[0].address, shares: '1000000', tokens: '1000000', rewards: '42' }],
    unbonding: [{ validator: validators[1].address, creation_height: 2, completion_height: 102, initial_balance: '500', balance: '500' }],
    redelegations: [] })],
  [/^\/api\/slashing$/, () => ({ events: [slash] })],
  [/^\/api\/validator_set\/(\d+)$/, (h) => ({ height: h, validators: setAt(h), hash: bytesToHex(validatorSetHash(setAt(h))) })],
];

createServer(async (req, res) => {
  const path = req.url.split('?')[0];
  if (STATIC[path]) {
    res.writeHead(200, { 'content-type': STATIC[path][1] }).end(file(STATIC[path][0]));
    return;
  }
  for (const [re, answer] of API) {
    const m = path.match(re);
    const body = m && (await answer(...m.slice(1).map((x) => (/^\d+$/.test(x) ? Number(x) : x))));
    if (body) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }
  // Genesis, certificates and set changes: the same replies the tests get.
  const reply = await chainFetch(path);
  res.writeHead(reply.status, { 'content-type': reply.headers.get('content-type') ?? 'application/json' }).end(Buffer.from(await reply.arrayBuffer()));
}).listen(port, '127.0.0.1', () => console.log(`mock gateway on http://127.0.0.1:${port}/`));
