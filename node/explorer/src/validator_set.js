// Validator sets in canonical order (ascending address) and their hash
// (validator/src/validator_set.rs `compute_hash`).
import { ascii, bytesToHex, concat, hexToBytes, sha3, uintBE } from './bytes.js';
import { publicKeyFromBytes } from './bls.js';

// Address of a consensus key: first 20 bytes of SHA3-256 of the 48-byte key (DESIGN §3).
export function addressOf(publicKeyBytes) {
  return sha3(publicKeyBytes).slice(0, 20);
}

const toBytes = (v) => (typeof v === 'string' ? hexToBytes(v) : v);

// SHA3-256("agora/valset/v1" ‖ n u32 ‖ for each, ascending address:
// address (20) ‖ public key (48) ‖ power u64). Accepts hex or bytes, any order.
export function validatorSetHash(validators) {
  const entries = validators
    .map((v) => ({ address: toBytes(v.address), key: toBytes(v.public_key), power: BigInt(v.power) }))
    .sort((a, b) => compareBytes(a.address, b.address));
  const parts = [ascii('agora/valset/v1'), uintBE(entries.length, 4)];
  for (const e of entries) parts.push(e.address, e.key, uintBE(e.power, 8));
  return sha3(concat(...parts));
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

// A set ready for certificate checks: entries validated and sorted, keys
// decoded (with subgroup checks) once, total power and hash computed once.
// Each entry: { address (hex), publicKey (bytes), point, power (BigInt) }.
export class ValidatorSet {
  constructor(validators) {
    if (validators.length === 0) throw new Error('validator set is empty');
    const entries = validators.map((v) => {
      const publicKey = toBytes(v.public_key);
      const address = bytesToHex(addressOf(publicKey));
      const served = typeof v.address === 'string' ? v.address : bytesToHex(v.address);
      if (served !== address) throw new Error(`validator ${served} is not the address of its key`);
      const power = BigInt(v.power);
      if (power <= 0n) throw new Error(`validator ${address} has no power`);
      return { address, publicKey, point: publicKeyFromBytes(publicKey), power };
    });
    entries.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    for (let i = 1; i < entries.length; i++) {
      if (entries[i].address === entries[i - 1].address) throw new Error(`duplicate validator ${entries[i].address}`);
    }
    this.validators = entries;
    this.totalPower = entries.reduce((sum, v) => sum + v.power, 0n);
    this.hash = validatorSetHash(validators);
  }
}
