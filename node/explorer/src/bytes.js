// Byte helpers shared by the verifier: hex, concatenation, big-endian
// integers and SHA3-256 (DESIGN §3: the one hash used everywhere).
import { sha3_256 } from '@noble/hashes/sha3.js';

export function sha3(bytes) {
  return sha3_256(bytes);
}

const HEX = /^(?:[0-9a-f]{2})*$/;

// The gateway writes bytes as lowercase hex; anything else is a malformed reply.
export function hexToBytes(hex) {
  if (typeof hex !== 'string' || !HEX.test(hex)) {
    throw new Error(`not lowercase hex: ${String(hex).slice(0, 20)}`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export const ascii = (s) => new TextEncoder().encode(s);

// Big-endian unsigned integer of `width` bytes; refuses values that do not fit
// rather than silently truncating them into different signing bytes.
export function uintBE(value, width) {
  let v = BigInt(value);
  if (v < 0n || v >= 1n << BigInt(8 * width)) throw new Error(`${value} does not fit in ${width} bytes`);
  const out = new Uint8Array(width);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
