// Verifies the certificate of any height trusting nothing but the genesis file.
//
// Trust assumption: the genesis file is the one the user expects (they compare
// its hash), and no validator set walked through, from genesis up to the
// height checked, had more than 1/3 of its power faulty. Under it, a
// certificate signed by more than 2/3 of a set's power commits the one block
// honest validators agreed on, so the header it commits is authentic, and that
// header's next_validators_hash authenticates the following set. A node that
// lies can make verification fail, never make a wrong block pass. (Like every
// light client, this does not protect against keys of a set that has since
// unbonded signing another history: compare the genesis hash and stay recent.)
//
// Set changes: header c−1 carries in next_validators_hash the hash of the set
// of height c (DESIGN §6). For each change height c the gateway lists, the
// walker verifies the certificate of c−1 with the set trusted at c−1, fetches
// the set of c, recomputes its hash and requires it to equal the header's.
// A node hiding a change cannot make the old set pass for later heights: the
// later headers name the new set, so their validators_hash mismatches.
import { bytesToHex, equalBytes, hexToBytes, sha3 } from './bytes.js';
import { verifyCertificate } from './certificate.js';
import { genesisSet } from './genesis.js';
import { decodeHeader } from './protobuf.js';
import { ValidatorSet } from './validator_set.js';

// A reply the walker could not get (HTTP or network error): the height is not
// verified yet, which is different from a failed verification.
export class FetchError extends Error {}

export class ChainWalker {
  // fetchFn has the signature of window.fetch (tests pass their own).
  constructor(fetchFn) {
    this.fetch = fetchFn;
    this.genesisHash = null;
    this.chainId = null;
    this.sets = []; // [{ from, set }] ascending by `from`; the set trusted from `from` on
    this.failure = null; // { from, reason }: heights ≥ from cannot be verified
    this.changes = [];
    this.changesCoverage = 0; // the set_changes list is complete up to this height
    this.queue = Promise.resolve(); // one verification at a time: the walk mutates state
    this.ready = null;
  }

  async getResponse(path) {
    let resp;
    try {
      resp = await this.fetch(path);
    } catch (e) {
      throw new FetchError(`${path}: ${e.message}`);
    }
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      throw new FetchError(`${path}: HTTP ${resp.status}${body.error ? `: ${body.error}` : ''}`);
    }
    return resp;
  }

  async getJson(path) {
    const resp = await this.getResponse(path);
    try {
      return await resp.json();
    } catch (e) {
      throw new FetchError(`${path}: not JSON: ${e.message}`);
    }
  }

  // Loads the genesis set (once; retried after a fetch error) and checks
  // that header 1 names it, so a node on another genesis fails at once.
  init() {
    this.ready ??= this.loadGenesis().catch((e) => {
      this.ready = null;
      throw e;
    });
    return this.ready;
  }

  async loadGenesis() {
    const bytes = new Uint8Array(await (await this.getResponse('/api/genesis')).arrayBuffer());
    this.genesisHash = bytesToHex(sha3(bytes));
    let genesis;
    try {
      genesis = genesisSet(bytes);
    } catch (e) {
      this.failure = { from: 1, reason: `genesis: ${e.message}` };
      return;
    }
    this.chainId = genesis.chainId;
    const block1 = await this.getJson('/api/block/1');
    let header;
    try {
      header = decodeHeader(hexToBytes(block1.header_bytes));
    } catch (e) {
      this.failure = { from: 1, reason: `header 1 does not decode: ${e.message}` };
      return;
    }
    if (!equalBytes(header.validators_hash, genesis.set.hash)) {
      this.failure = { from: 1, reason: 'header 1 validators_hash does not match the genesis validator set' };
      return;
    }
    this.sets = [{ from: 1, set: genesis.set }];
  }

  // → { ok: true, signedPower, totalPower, signers, validators }
  //   or { ok: false, reason, validators? }; throws FetchError when a reply is missing.
  verifyHeight(height) {
    const run = this.queue.then(() => this.verifyNow(height));
    this.queue = run.catch(() => {});
    return run;
  }

  async verifyNow(height) {
    await this.init();
    if (!Number.isSafeInteger(height) || height < 1) return { ok: false, reason: `no such height ${height}` };
    if (this.sets.length === 0) return { ok: false, reason: this.failure.reason };
    await this.walkTo(height);
    if (this.failure && height >= this.failure.from) return { ok: false, reason: this.failure.reason };
    const set = this.setAt(height);
    const result = await this.checkServedCertificate(height, set);
    return { ...result, validators: set.validators };
  }

  setAt(height) {
    let found = null;
    for (const s of this.sets) if (s.from <= height) found = s.set;
    return found;
  }

  // The list is complete up to the latest height the node reported before
  // serving it; it is refetched only for heights beyond that.
  async refreshChanges(height) {
    if (height <= this.changesCoverage) return;
    const latest = Number((await this.getJson('/api/status')).latest_height);
    if (!(height <= latest)) throw new FetchError(`height ${height} is not committed yet (latest ${latest})`);
    const heights = (await this.getJson('/api/set_changes')).heights;
    if (!Array.isArray(heights) || !heights.every((c, i) => Number.isSafeInteger(c) && c >= 2 && (i === 0 || c > heights[i - 1]))) {
      throw new FetchError('/api/set_changes: heights must be ascending integers ≥ 2');
    }
    this.changes = heights;
    this.changesCoverage = latest;
  }

  async walkTo(height) {
    await this.refreshChanges(height);
    for (const c of this.changes) {
      if (c > height || (this.failure && c >= this.failure.from)) break;
      if (this.sets.some((s) => s.from === c)) continue;
      const reason = await this.cross(c);
      if (reason) {
        this.failure = { from: c, reason: `validator-set change at height ${c}: ${reason}` };
        break;
      }
    }
  }

  // Returns a failure reason, or null once the set of height c is trusted.
  async cross(c) {
    const before = await this.checkServedCertificate(c - 1, this.setAt(c - 1));
    if (!before.ok) return `certificate of height ${c - 1}: ${before.reason}`;
    const next = before.header.next_validators_hash;
    const served = await this.getJson(`/api/validator_set/${c}`);
    let set;
    try {
      set = new ValidatorSet(served.validators ?? []);
    } catch (e) {
      return `validator set served for height ${c} is malformed: ${e.message}`;
    }
    // The served "hash" field is ignored: only the recomputed hash counts.
    if (!equalBytes(set.hash, next)) {
      return `validator set served for height ${c} hashes to ${bytesToHex(set.hash)}, but header ${c - 1} commits to ${bytesToHex(next)}`;
    }
    this.sets.push({ from: c, set });
    this.sets.sort((a, b) => a.from - b.from);
    return null;
  }

  // Fetches /api/certificate/{h} and verifies it, also that the node served
  // the header of the height asked for. On success also returns the header.
  async checkServedCertificate(height, set) {
    const reply = await this.getJson(`/api/certificate/${height}`);
    let headerBytes, header;
    try {
      headerBytes = hexToBytes(reply.header_bytes);
      header = decodeHeader(headerBytes);
    } catch (e) {
      return { ok: false, reason: `header bytes do not decode: ${e.message}` };
    }
    if (header.height !== BigInt(height)) {
      return { ok: false, reason: `the node served header ${header.height} for height ${height}` };
    }
    // The newest block's certificate may not exist yet: not a failure, retry later.
    if (!reply.certificate) throw new FetchError(`/api/certificate/${height}: no certificate yet`);
    const result = verifyCertificate(headerBytes, reply.certificate, set, this.chainId);
    // The certified block's hash, for checking what a page shows of it.
    return { ...result, header, blockHash: bytesToHex(sha3(headerBytes)) };
  }
}
