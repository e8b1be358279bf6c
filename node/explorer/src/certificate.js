// Commit certificates (DESIGN §7): which block they commit, who signed, and
// whether more than 2/3 of the trusted set's power signed it.
import { ascii, bytesToHex, concat, equalBytes, hexToBytes, sha3, uintBE } from './bytes.js';
import { fastAggregateVerify, signatureFromBytes } from './bls.js';
import { decodeHeader } from './protobuf.js';
import { ValidatorSet } from './validator_set.js';

const PRECOMMIT = 2;

// Block hash: SHA3-256 of the Header's protobuf bytes exactly as served (DESIGN §3).
export function blockHash(headerBytes) {
  return sha3(headerBytes);
}

// "agora/vote/v1" ‖ len(chain_id) u8 ‖ chain_id ‖ type u8 ‖ height u64 ‖ round u32 ‖ block_hash (DESIGN §4).
export function precommitSigningBytes(chainId, height, round, blockHashBytes) {
  const id = ascii(chainId);
  if (id.length > 255) throw new Error('chain_id longer than 255 bytes');
  if (blockHashBytes.length !== 32) throw new Error('block hash must be 32 bytes');
  return concat(ascii('agora/vote/v1'), Uint8Array.of(id.length), id, Uint8Array.of(PRECOMMIT),
    uintBE(height, 8), uintBE(round, 4), blockHashBytes);
}

const fail = (reason, extra = {}) => ({ ok: false, reason, ...extra });

// Bit i of the bitmap is bit (i mod 8) of byte (i div 8), least significant first.
function decodeSigners(bitmap, n) {
  const expected = Math.ceil(n / 8);
  if (bitmap.length !== expected) {
    return { reason: `signers bitmap is ${bitmap.length} bytes, expected ${expected} for ${n} validators` };
  }
  for (let i = n; i < 8 * bitmap.length; i++) {
    if (bitmap[i >> 3] & (1 << (i & 7))) return { reason: `signers bitmap sets bit ${i}, past the ${n} validators` };
  }
  return { signers: Array.from({ length: n }, (_, i) => (bitmap[i >> 3] & (1 << (i & 7))) !== 0) };
}

const asSet = (validators) => (validators instanceof ValidatorSet ? validators : new ValidatorSet(validators));

// The certificate alone, against a trusted set: bitmap, quorum, then the one
// pairing check (cheapest first). `cert` is as served: hex bytes, numeric height/round.
export function verifyCommit(cert, trustedValidators, chainId) {
  const set = asSet(trustedValidators);
  let bitmap, hash, signature;
  try {
    bitmap = hexToBytes(cert.signers);
    hash = hexToBytes(cert.block_hash);
  } catch (e) {
    return fail(`malformed certificate: ${e.message}`);
  }
  const decoded = decodeSigners(bitmap, set.validators.length);
  if (!decoded.signers) return fail(decoded.reason);
  const { signers } = decoded;
  const signedPower = set.validators.reduce((sum, v, i) => (signers[i] ? sum + v.power : sum), 0n);
  const totalPower = set.totalPower;
  const result = { signedPower, totalPower, signers };
  // Strictly more than 2/3, in integers: 3·signed > 2·total.
  if (3n * signedPower <= 2n * totalPower) {
    return fail(`signed power ${signedPower} is not more than 2/3 of total power ${totalPower}`, result);
  }
  try {
    signature = signatureFromBytes(hexToBytes(cert.aggregate_signature));
  } catch (e) {
    return fail(`aggregate signature is malformed: ${e.message}`, result);
  }
  const msg = precommitSigningBytes(chainId, cert.height, cert.round, hash);
  const keys = set.validators.filter((_, i) => signers[i]).map((v) => v.point);
  if (!fastAggregateVerify(keys, msg, signature)) {
    return fail('aggregate signature does not verify (FastAggregateVerify failed)', result);
  }
  return { ok: true, ...result };
}

// The certificate of a block given its header bytes: it must commit exactly
// these bytes at their height, under the set the header names, which must be
// the set we trust for that height.
export function verifyCertificate(headerBytes, cert, trustedValidators, chainId) {
  const set = asSet(trustedValidators);
  let header;
  try {
    header = decodeHeader(headerBytes);
  } catch (e) {
    return fail(`header bytes do not decode: ${e.message}`);
  }
  if (header.chain_id !== chainId) return fail(`header chain_id "${header.chain_id}" is not "${chainId}"`);
  if (BigInt(cert.height) !== header.height) {
    return fail(`certificate height ${cert.height} does not match header height ${header.height}`);
  }
  const hash = bytesToHex(blockHash(headerBytes));
  if (cert.block_hash !== hash) {
    return fail(`certificate block_hash ${cert.block_hash} is not the header's hash ${hash}`);
  }
  if (!equalBytes(header.validators_hash, set.hash)) {
    return fail(`header validators_hash ${bytesToHex(header.validators_hash)} does not match the trusted validator set ${bytesToHex(set.hash)}`);
  }
  return verifyCommit(cert, set, chainId);
}
