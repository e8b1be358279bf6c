// #/ — the latest blocks, refreshed every second, each with a badge for its
// certificate as verified by this browser. Rows are updated in place (keyed by
// height) so the table does not flicker and element references stay valid.
import { getJson } from '../api.js';
import { errorBox, h, replaceChildren } from '../dom.js';
import { addressLink, blockLink, short, time } from '../format.js';
import { verify } from '../verifier.js';

const BADGE_TEXT = { pending: 'verifying…', verified: 'verified', failed: 'failed' };

function badge() {
  return h('span', { class: 'cert-badge', dataset: { state: 'pending' } }, BADGE_TEXT.pending);
}

function setBadge(el, { state, result, error }) {
  el.dataset.state = state;
  el.textContent = BADGE_TEXT[state];
  el.title = state === 'failed' ? result.reason : state === 'pending' && error ? `waiting: ${error}` : '';
}

function row(b) {
  const cert = badge();
  const tr = h('tr', { class: 'block-row', dataset: { height: b.height } },
    h('td', {}, blockLink(b.height)),
    h('td', {}, h('a', { href: `#/block/${b.height}`, class: 'hex', title: b.block_hash }, short(b.block_hash))),
    h('td', {}, addressLink(b.proposer_address)),
    h('td', {}, time(b.time_ms)),
    h('td', { class: 'num' }, b.txs),
    h('td', { class: 'num' }, b.evidence),
    h('td', {}, cert));
  verify(b.height).then((s) => setBadge(cert, s));
  return tr;
}

// A badge still pending (certificate not served yet) asks again.
function retryPending(tr, height) {
  const cert = tr.querySelector('.cert-badge');
  if (cert.dataset.state === 'pending') verify(height).then((s) => setBadge(cert, s));
}

export function render(view) {
  const status = h('div');
  const body = h('tbody');
  replaceChildren(view, h('h2', {}, 'Latest blocks'), status,
    h('table', { id: 'blocks' },
      h('thead', {}, h('tr', {}, ['Height', 'Hash', 'Proposer', 'Time', 'Txs', 'Evidence', 'Certificate'].map((t) => h('th', {}, t)))),
      body));

  const rows = new Map(); // height → tr
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const reply = await getJson('/api/blocks?limit=10');
      replaceChildren(status, reply.blocks.length ? [] : h('p', { class: 'muted' }, 'No blocks yet.'));
      const wanted = new Set(reply.blocks.map((b) => b.height));
      for (const [height, tr] of rows) if (!wanted.has(height)) (tr.remove(), rows.delete(height));
      for (const b of reply.blocks) {
        if (!rows.has(b.height)) rows.set(b.height, row(b));
        else retryPending(rows.get(b.height), b.height);
        body.append(rows.get(b.height)); // moves existing rows: keeps descending order
      }
    } catch (e) {
      replaceChildren(status, errorBox(`Could not load blocks: ${e.message}`));
    } finally {
      busy = false;
    }
  }
  refresh();
  const timer = setInterval(refresh, 1000);
  return () => clearInterval(timer);
}
