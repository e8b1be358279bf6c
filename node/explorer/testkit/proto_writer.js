// A small protobuf writer for Header, written like prost writes it (fields in
// number order, proto3 defaults omitted), so test headers hash as the node's do.
const enc = new TextEncoder();

function varint(v) {
  let n = BigInt(v);
  const out = [];
  do {
    let b = Number(n & 0x7fn);
    n >>= 7n;
    if (n > 0n) b |= 0x80;
    out.push(b);
  } while (n > 0n);
  return out;
}

const FIELDS = [
  ['chain_id', 1, 'string'], ['height', 2, 'varint'], ['parent_hash', 3, 'bytes'], ['proposer_address', 4, 'bytes'],
  ['vrf_proof', 5, 'bytes'], ['txs_hash', 6, 'bytes'], ['evidence_hash', 7, 'bytes'], ['last_commit_hash', 8, 'bytes'],
  ['app_hash', 9, 'bytes'], ['validators_hash', 10, 'bytes'], ['next_validators_hash', 11, 'bytes'],
  ['time_ms', 12, 'varint'], ['proposal_round', 13, 'varint'],
];

export function encodeHeader(header) {
  const out = [];
  for (const [name, number, kind] of FIELDS) {
    const v = header[name];
    if (v === undefined) continue;
    if (kind === 'varint') {
      if (BigInt(v) === 0n) continue;
      out.push(...varint(number << 3), ...varint(v));
    } else {
      const bytes = kind === 'string' ? enc.encode(v) : v;
      if (bytes.length === 0) continue;
      out.push(...varint((number << 3) | 2), ...varint(bytes.length), ...bytes);
    }
  }
  return Uint8Array.from(out);
}
