// A synthetic Agora chain built with noble: keys with proofs of possession, a
// genesis.json text, headers encoded like prost, and certificates aggregated
// from real precommit signatures, with a validator-set change at height 4.
// `gateway(chain)` serves it through a fetch function the way the node's JSON
// gateway does, so tests can tamper with any reply.
import {
  addressOf, bls12_381, bytesToHex, hexToBytes, POP_DST, precommitSigningBytes, sha3, SIG_DST, validatorSetHash,
} from '../dist/verify.test-bundle.js';
import { encodeHeader } from './proto_writer.js';
import { bls as vectors } from './vectors.js';

const sigs = bls12_381.longSignatures;
export const CHAIN_ID = 'agora-explorer-test';
export const CHANGE = 4; // first height of set B
export const TOP = 7;
const REDUCTION = 1000000n;

// Deterministic, known-good secret keys: those of the conformance vectors.
export const keys = vectors.keys.slice(0, 6).map((k) => {
  const sk = hexToBytes(k.secret_key);
  const pk = sigs.getPublicKey(sk).toBytes();
  return { sk, pk, address: bytesToHex(addressOf(pk)), pop: sigs.sign(sigs.hash(pk, POP_DST), sk).toBytes() };
});

const entry = (k, power) => ({ address: k.address, public_key: bytesToHex(k.pk), power: String(power) });
const canonical = (set) => [...set].sort((a, b) => (a.address < b.address ? -1 : 1));

// Set A from genesis: powers 10, 20, 30, 30 (total 90); key 4 bonds less than
// one unit of power and is left out. Set B from height 4: total 115.
export const SET_A = canonical([entry(keys[0], 10), entry(keys[1], 20), entry(keys[2], 30), entry(keys[3], 30)]);
export const SET_B = canonical([entry(keys[1], 25), entry(keys[2], 25), entry(keys[3], 25), entry(keys[5], 40)]);
export const setAt = (h) => (h < CHANGE ? SET_A : SET_B);

export function genesisText() {
  const bond = (k, power, extra = 0n) => ({
    operator: bytesToHex(sha3(k.pk).slice(12)), consensus_public_key: bytesToHex(k.pk), proof_of_possession: bytesToHex(k.pop),
    self_bond: String(BigInt(power) * REDUCTION + extra), commission_rate_bps: 500, commission_max_rate_bps: 2000, commission_max_change_bps: 100,
  });
  const validators = [bond(keys[0], 10, 500000n), bond(keys[1], 20), bond(keys[2], 30), bond(keys[3], 30), bond(keys[4], 0, 500000n)];
  const genesis = {
    chain_id: CHAIN_ID, genesis_time_ms: 1764640000000,
    params: { power_reduction: String(REDUCTION), unbonding_period: 100, max_validators: 100, min_self_bond: '1',
      slash_fraction_double_sign_bps: 500, max_unbonding_entries: 7, jail_period: 100 },
    accounts: validators.map((v) => ({ address: v.operator, balance: '100000000000' })),
    validators,
  };
  return `${JSON.stringify(genesis, null, 2)}\n`;
}

// Signs the precommit of (height, round, hash) by the set members at `indices`.
export function certify(set, height, round, hash, indices) {
  const msg = sigs.hash(precommitSigningBytes(CHAIN_ID, height, round, hash), SIG_DST);
  const bitmap = new Uint8Array(Math.ceil(set.length / 8));
  const parts = indices.map((i) => {
    bitmap[i >> 3] |= 1 << (i & 7);
    return sigs.sign(msg, keys.find((k) => k.address === set[i].address).sk);
  });
  return { height, round, block_hash: bytesToHex(hash), signers: bytesToHex(bitmap), aggregate_signature: bytesToHex(sigs.aggregateSignatures(parts).toBytes()) };
}

// Honest certificates: all sign but one validator of least power, which
// leaves more than 2/3 of the power in both sets.
function honestSigners(set) {
  const least = set.reduce((m, v, i) => (Number(v.power) < Number(set[m].power) ? i : m), 0);
  return set.map((_, i) => i).filter((i) => i !== least);
}

export function buildChain() {
  const headers = new Map();
  const certs = new Map();
  let parent = new Uint8Array(32);
  for (let h = 1; h <= TOP; h++) {
    const bytes = encodeHeader({
      chain_id: CHAIN_ID, height: BigInt(h), parent_hash: parent, proposer_address: hexToBytes(setAt(h)[1].address),
      vrf_proof: new Uint8Array(96).fill(h), txs_hash: sha3(Uint8Array.of(h, 1)), evidence_hash: sha3(Uint8Array.of(h, 2)),
      last_commit_hash: sha3(Uint8Array.of(h, 3)), app_hash: sha3(Uint8Array.of(h, 4)),
      validators_hash: validatorSetHash(setAt(h)), next_validators_hash: validatorSetHash(setAt(h + 1)),
      time_ms: 1764640000000n + BigInt(h) * 1000n, proposal_round: 1, // non-zero: the header's last byte is this varint
    });
    parent = sha3(bytes);
    headers.set(h, bytes);
    certs.set(h, certify(setAt(h), h, h % 3, parent, honestSigners(setAt(h))));
  }
  return { genesis: genesisText(), latest: TOP, headers, certs, changes: [CHANGE], sets: new Map([[1, SET_A], [CHANGE, SET_B]]) };
}

const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

// A fetch function over the chain (read at request time, so tests may tamper
// with the chain after creating the gateway). Records the paths requested.
export function gateway(chain) {
  const fetchFn = async (path) => {
    fetchFn.paths.push(path);
    let m;
    if (path === '/api/genesis') return new Response(chain.genesis);
    if (path === '/api/status') return json(200, { chain_id: CHAIN_ID, latest_height: chain.latest, round: 0, peers: 0 });
    if (path === '/api/set_changes') return json(200, { heights: chain.changes });
    if ((m = path.match(/^\/api\/(block|certificate)\/(\d+)$/)) && chain.headers.has(Number(m[2]))
      && (m[1] === 'block' || chain.certs.has(Number(m[2])))) {
      const h = Number(m[2]);
      return json(200, { height: h, header_bytes: bytesToHex(chain.headers.get(h)), certificate: chain.certs.get(h) ?? null });
    }
    if ((m = path.match(/^\/api\/validator_set\/(\d+)$/))) {
      const h = Number(m[1]);
      const from = Math.max(...[...chain.sets.keys()].filter((c) => c <= h));
      const validators = chain.sets.get(from);
      return json(200, { height: h, validators, hash: bytesToHex(validatorSetHash(setAt(h))) });
    }
    return json(404, { error: `no such resource ${path}` });
  };
  fetchFn.paths = [];
  return fetchFn;
}
