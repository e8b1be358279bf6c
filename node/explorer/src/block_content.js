// What a block page shows besides its certificate: the header and the
// transaction and evidence lists, checked against the certified block hash.
// The header must be the certified one (same SHA3-256), and each list must
// hash to the commitment in that header: SHA3-256 of the concatenated
// SHA3-256 of each item's protobuf encoding (ARCHITECTURE.md, "block.rs"), so
// a node can neither add, drop, reorder nor alter an item it shows.
import { bytesToHex, concat, equalBytes, hexToBytes, sha3 } from './bytes.js';
import { decodeHeader } from './protobuf.js';

// SHA3-256(‖ SHA3-256(item)) over the items in order.
export function listHash(items) {
  return sha3(concat(...items.map((b) => sha3(b))));
}

const fail = (reason) => ({ ok: false, reason });

// Checks one served list (`encoded`: hex protobuf encodings, `shown`: the
// JSON items, each with a `hash`) against the header's commitment.
function checkList(name, commitment, encoded, shown) {
  if (!Array.isArray(encoded)) return fail(`the node did not serve the encoded ${name}`);
  let items;
  try {
    items = encoded.map(hexToBytes);
  } catch (e) {
    return fail(`encoded ${name} are not hex: ${e.message}`);
  }
  const got = listHash(items);
  if (!equalBytes(got, commitment)) {
    return fail(`${name} hash to ${bytesToHex(got)}, the header commits to ${bytesToHex(commitment)}`);
  }
  // A long list may be shown in part (the gateway details at most 1,000
  // transactions) but is always committed whole.
  if (shown.length > items.length) return fail(`${shown.length} ${name} shown, ${items.length} committed`);
  for (let i = 0; i < shown.length; i++) {
    if (shown[i].hash !== bytesToHex(sha3(items[i]))) return fail(`${name} #${i} shown is not the one committed`);
  }
  return { ok: true };
}

// `block` is /api/block/{h}; `certifiedHash` the hex block hash the browser's
// certificate check accepted for that height.
export function checkBlockContent(block, certifiedHash) {
  let headerBytes;
  let header;
  try {
    headerBytes = hexToBytes(block.header_bytes);
    header = decodeHeader(headerBytes);
  } catch (e) {
    return fail(`header bytes do not decode: ${e.message}`);
  }
  const hash = bytesToHex(sha3(headerBytes));
  if (hash !== certifiedHash) return fail(`the header shown (${hash}) is not the certified block (${certifiedHash})`);
  if (block.txs_total !== undefined && block.txs_total !== block.txs_encoded?.length) {
    return fail(`the node counts ${block.txs_total} transactions but served ${block.txs_encoded?.length ?? 0}`);
  }
  const txs = checkList('transactions', header.txs_hash, block.txs_encoded, block.txs);
  if (!txs.ok) return txs;
  return checkList('evidence', header.evidence_hash, block.evidence_encoded, block.evidence);
}
