// A minimal protobuf reader for the Header message (proto/agora/v1/types.proto).
// The explorer hashes the header bytes exactly as served and only decodes them
// to show and check fields, so this reader needs no schema compiler: it walks
// tags, rejects anything malformed, and always advances (no endless loops).

const MAX_VARINT_BYTES = 10;

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }

  done() {
    return this.pos >= this.bytes.length;
  }

  // Unsigned varint as BigInt; at most 10 bytes and at most 64 bits.
  varint() {
    let value = 0n;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.bytes.length) throw new Error('truncated varint');
      const b = this.bytes[this.pos++];
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        if (value >= 1n << 64n) throw new Error('varint exceeds 64 bits');
        return value;
      }
    }
    throw new Error('varint longer than 10 bytes');
  }

  take(n) {
    if (n > this.bytes.length - this.pos) throw new Error('truncated field');
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  lengthDelimited() {
    const len = this.varint();
    if (len > BigInt(this.bytes.length - this.pos)) throw new Error('length past end of input');
    return this.take(Number(len));
  }

  skip(wireType) {
    switch (wireType) {
      case 0: return void this.varint();
      case 1: return void this.take(8);
      case 2: return void this.lengthDelimited();
      case 5: return void this.take(4);
      default: throw new Error(`unsupported wire type ${wireType}`);
    }
  }
}

// Header fields by number: [name, kind]. Kinds: string, bytes, u64 (BigInt), u32 (Number).
const HEADER_FIELDS = new Map([
  [1, ['chain_id', 'string']],
  [2, ['height', 'u64']],
  [3, ['parent_hash', 'bytes']],
  [4, ['proposer_address', 'bytes']],
  [5, ['vrf_proof', 'bytes']],
  [6, ['txs_hash', 'bytes']],
  [7, ['evidence_hash', 'bytes']],
  [8, ['last_commit_hash', 'bytes']],
  [9, ['app_hash', 'bytes']],
  [10, ['validators_hash', 'bytes']],
  [11, ['next_validators_hash', 'bytes']],
  [12, ['time_ms', 'u64']],
  [13, ['proposal_round', 'u32']],
]);

const DEFAULTS = { string: '', bytes: new Uint8Array(0), u64: 0n, u32: 0 };

// Decodes Header bytes into an object with every field (proto3 defaults for
// absent ones). Throws on malformed input. Unknown fields are skipped, as any
// protobuf decoder would, so a newer header still shows.
export function decodeHeader(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new Error('header must be bytes');
  const header = {};
  for (const [name, kind] of HEADER_FIELDS.values()) header[name] = DEFAULTS[kind];
  const r = new Reader(bytes);
  while (!r.done()) {
    const tag = r.varint();
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (number === 0) throw new Error('field number 0');
    const field = HEADER_FIELDS.get(number);
    if (!field) {
      r.skip(wireType);
      continue;
    }
    const [name, kind] = field;
    const expected = kind === 'string' || kind === 'bytes' ? 2 : 0;
    if (wireType !== expected) throw new Error(`${name}: wire type ${wireType}, expected ${expected}`);
    header[name] = readValue(r, kind, name);
  }
  return header;
}

function readValue(r, kind, name) {
  switch (kind) {
    case 'string':
      return new TextDecoder('utf-8', { fatal: true }).decode(r.lengthDelimited());
    case 'bytes':
      return r.lengthDelimited().slice();
    case 'u64':
      return r.varint();
    default: {
      const v = r.varint();
      if (v > 0xffffffffn) throw new Error(`${name}: exceeds 32 bits`);
      return Number(v);
    }
  }
}
