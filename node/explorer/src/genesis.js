// The validator set of height 1, derived from the exact genesis.json bytes the
// way the ledger does (validator/src/ledger/mod.rs `from_genesis` and
// validator_updates.rs `compute_active_set`), so the browser trusts nothing
// but the genesis file the user can compare with their own copy.
import { bytesToHex, hexToBytes, sha3 } from './bytes.js';
import { verifyPossession } from './bls.js';
import { addressOf, ValidatorSet } from './validator_set.js';

// Defaults the ledger substitutes for empty or zero parameters (params.rs).
const DEFAULT_POWER_REDUCTION = 1000000n;
const DEFAULT_MAX_VALIDATORS = 100;

function amount(field, s) {
  if (typeof s !== 'string' || !/^[0-9]+$/.test(s)) throw new Error(`${field}: ${JSON.stringify(s)} is not a decimal amount`);
  return BigInt(s);
}

function hexField(field, s, len) {
  let bytes;
  try {
    bytes = hexToBytes(typeof s === 'string' ? s.replace(/^0x/, '').toLowerCase() : s);
  } catch {
    throw new Error(`${field}: not hex`);
  }
  if (bytes.length !== len) throw new Error(`${field}: expected ${len} bytes, got ${bytes.length}`);
  return bytes;
}

// Returns { chainId, genesisHash (hex of SHA3-256 of the exact bytes), set: ValidatorSet }.
// `genesis` is the file as bytes (preferred: hashed as is) or as text (hashed as UTF-8).
export function genesisSet(genesis) {
  const bytes = typeof genesis === 'string' ? new TextEncoder().encode(genesis) : genesis;
  const genesisHash = bytesToHex(sha3(bytes));
  const g = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  if (typeof g.chain_id !== 'string' || g.chain_id === '') throw new Error('chain_id missing');
  const params = g.params ?? {};
  const reduction = params.power_reduction ? amount('params.power_reduction', params.power_reduction) : DEFAULT_POWER_REDUCTION;
  if (reduction === 0n) throw new Error('params.power_reduction must be positive');
  const maxValidators = Number(params.max_validators) || DEFAULT_MAX_VALIDATORS;
  if (!Array.isArray(g.validators) || g.validators.length === 0) throw new Error('no validators');

  const candidates = g.validators.map((v, i) => {
    const key = hexField(`validators[${i}].consensus_public_key`, v.consensus_public_key, 48);
    const pop = hexField(`validators[${i}].proof_of_possession`, v.proof_of_possession, 96);
    // Without a valid proof of possession a key could be a rogue key that
    // cancels the others in an aggregate; the chain rejects such a genesis.
    let valid;
    try {
      valid = verifyPossession(key, pop);
    } catch (e) {
      throw new Error(`validators[${i}]: ${e.message}`);
    }
    if (!valid) throw new Error(`validators[${i}]: proof of possession does not verify`);
    const tokens = amount(`validators[${i}].self_bond`, v.self_bond);
    return { address: bytesToHex(addressOf(key)), public_key: key, tokens, power: tokens / reduction };
  });
  // Active set: power ≥ 1, the most tokens first (ties by address), at most max_validators.
  const active = candidates
    .filter((v) => v.power > 0n)
    .sort((a, b) => (a.tokens !== b.tokens ? (b.tokens > a.tokens ? 1 : -1) : a.address < b.address ? -1 : 1))
    .slice(0, maxValidators);
  if (active.length === 0) throw new Error('no validator has at least one unit of voting power');
  return { chainId: g.chain_id, genesisHash, set: new ValidatorSet(active) };
}
