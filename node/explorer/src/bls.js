// BLS12-381 as Agora uses it (DESIGN §4): min_pk (public keys in G1, 48
// bytes compressed; signatures in G2, 96 bytes compressed), IETF
// proof-of-possession ciphersuite.
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { ascii } from './bytes.js';

export const SIG_DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';
export const POP_DST = 'BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';

const sigs = bls12_381.longSignatures;
const G1 = bls12_381.G1.Point;
const G2 = bls12_381.G2.Point;

// noble's fromBytes also accepts uncompressed encodings and the point at
// infinity; Agora accepts neither, so lengths and infinity are checked here.
// noble checks that the point is on the curve and in the prime-order subgroup;
// its messages vary by cause, so one message stands for them all.
function decode(group, bytes, what, name) {
  try {
    return group.fromBytes(bytes);
  } catch {
    throw new Error(`${what} is not a point of the ${name} subgroup`);
  }
}

export function publicKeyFromBytes(bytes) {
  if (bytes.length !== 48) throw new Error(`public key must be 48 bytes, got ${bytes.length}`);
  const p = decode(G1, bytes, 'public key', 'G1');
  if (p.is0()) throw new Error('public key is the point at infinity');
  return p;
}

export function signatureFromBytes(bytes) {
  if (bytes.length !== 96) throw new Error(`signature must be 96 bytes, got ${bytes.length}`);
  const p = decode(G2, bytes, 'signature', 'G2');
  if (p.is0()) throw new Error('signature is the point at infinity');
  return p;
}

// One pairing check e(pk, H(msg)) = e(g1, sig). Keys and signature are
// already-validated points. An infinity aggregate key (keys that cancel) makes
// noble throw, which is a failed verification, not an error of the caller.
function verifyPoints(sig, msg, pk, dst) {
  try {
    return sigs.verify(sig, sigs.hash(msg, dst), pk);
  } catch {
    return false;
  }
}

// FastAggregateVerify: all signers signed the same message, so the aggregate
// signature verifies under the sum of their keys. Sound only because every key
// carries a verified proof of possession (rogue-key defence).
export function fastAggregateVerify(publicKeys, msg, signature) {
  if (publicKeys.length === 0) return false;
  return verifyPoints(signature, msg, sigs.aggregatePublicKeys(publicKeys), ascii(SIG_DST));
}

// PopVerify: the proof signs the 48-byte compressed public key under the PoP DST
// (validator/src/crypto/bls.rs `prove_possession`).
export function verifyPossession(publicKeyBytes, popBytes) {
  const pk = publicKeyFromBytes(publicKeyBytes);
  return verifyPoints(signatureFromBytes(popBytes), publicKeyBytes, pk, ascii(POP_DST));
}
