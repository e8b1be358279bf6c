// #/block/{h} — one block: the header as decoded from the exact bytes the
// certificate commits, its transactions and evidence, and the certificate as
// verified by this browser (ChainWalker, trusting only genesis).
import { getJson } from '../api.js';
import { errorBox, fields, h, replaceChildren, table } from '../dom.js';
import { addressLink, hex, powerShare, time } from '../format.js';
import { bytesToHex, checkBlockContent, decodeHeader, hexToBytes, sha3 } from '../verify.js';
import { verify } from '../verifier.js';

const RETRY_MS = 2000;

// Whether the header, transactions and evidence shown are the certified
// block's (checked once the certificate is verified).
function contentView() {
  const status = h('p', { id: 'content-status', dataset: { state: 'pending' } }, 'checking the lists against the certified header…');
  const settle = (block, certResult) => {
    if (!certResult.ok) {
      status.dataset.state = 'failed';
      status.textContent = 'not checked: the certificate did not verify';
      return;
    }
    const r = checkBlockContent(block, certResult.blockHash);
    status.dataset.state = r.ok ? 'verified' : 'failed';
    status.textContent = r.ok
      ? 'header, transactions and evidence match the certified block'
      : `content check failed: ${r.reason}`;
  };
  return { node: status, settle };
}

function headerView(headerBytes) {
  let hd;
  try {
    hd = decodeHeader(hexToBytes(headerBytes));
  } catch (e) {
    return errorBox(`Header bytes do not decode: ${e.message}`);
  }
  const x = (b) => hex(bytesToHex(b));
  return fields([
    ['block hash (SHA3 of header bytes)', hex(bytesToHex(sha3(hexToBytes(headerBytes))))],
    ['chain_id', hd.chain_id],
    ['height', String(hd.height)],
    ['parent_hash', hd.height > 1n ? h('a', { href: `#/block/${hd.height - 1n}` }, x(hd.parent_hash)) : x(hd.parent_hash)],
    ['proposer_address', addressLink(bytesToHex(hd.proposer_address))],
    ['proposal_round', String(hd.proposal_round)],
    ['time_ms', `${hd.time_ms} (${time(hd.time_ms)})`],
    ['vrf_proof', x(hd.vrf_proof)],
    ['txs_hash', x(hd.txs_hash)],
    ['evidence_hash', x(hd.evidence_hash)],
    ['last_commit_hash', x(hd.last_commit_hash)],
    ['app_hash', x(hd.app_hash)],
    ['validators_hash', x(hd.validators_hash)],
    ['next_validators_hash', x(hd.next_validators_hash)],
  ]);
}

function txBody(body) {
  return h('dl', { class: 'inline' }, Object.entries(body ?? {}).map(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))]));
}

function txTable(txs) {
  if (!txs.length) return h('p', { class: 'muted' }, 'No transactions.');
  return table({ id: 'txs' }, ['Hash', 'Sender', 'Nonce', 'Kind', 'Body', 'Fee', 'Status', 'Log'],
    txs.map((t) => h('tr', { class: `tx tx-${t.status}` },
      h('td', {}, hex(t.hash)), h('td', {}, addressLink(t.sender, 'delegator')), h('td', { class: 'num' }, t.nonce),
      h('td', {}, t.kind), h('td', {}, txBody(t.body)), h('td', { class: 'num' }, t.fee),
      h('td', { class: 'status' }, t.status), h('td', { class: 'log' }, t.log || ''))));
}

function evidenceList(evidence) {
  if (!evidence.length) return h('p', { class: 'muted' }, 'No evidence.');
  return h('ul', { class: 'evidence' }, evidence.map((e) => h('li', { class: 'evidence-item', dataset: { kind: e.kind } },
    h('strong', {}, e.kind.replaceAll('_', ' ')), ` at height ${e.height}, round ${e.round} against `,
    e.offenders.map((a, i) => [i ? ', ' : '', addressLink(a)]), ' — hash ', hex(e.hash))));
}

// The certificate section; fills in as the walker answers.
function certificateView(height, onSettled) {
  const status = h('p', { id: 'cert-status', dataset: { state: 'pending' } }, 'verifying in your browser…');
  const power = h('p', { id: 'signed-power' });
  const signers = h('div', { id: 'signers' });
  let timer = null;
  let stopped = false;
  const show = ({ state, result, error }) => {
    if (stopped) return;
    status.dataset.state = state;
    if (state === 'pending') {
      status.textContent = `waiting for the certificate${error ? ` (${error})` : ''}…`;
      timer = setTimeout(() => verify(height).then(show), RETRY_MS);
      return;
    }
    status.textContent = state === 'verified' ? 'verified by your browser' : `verification failed: ${result.reason}`;
    onSettled(result);
    if (result.validators) {
      replaceChildren(signers, result.validators.map((v, i) => h('span', {
        class: `signer ${result.signers?.[i] ? 'signed' : 'missing'}`,
        title: `${v.address} power ${v.power}`,
      })));
    }
    if (result.signedPower !== undefined) power.textContent = powerShare(result.signedPower, result.totalPower);
  };
  verify(height).then(show);
  return { node: h('section', {}, h('h3', {}, 'Commit certificate'), status, power, signers), stop: () => { stopped = true; clearTimeout(timer); } };
}

export function render(view, [heightText]) {
  const height = Number(heightText);
  replaceChildren(view, h('h2', {}, `Block ${heightText}`), h('p', { class: 'muted' }, 'loading…'));
  if (!Number.isSafeInteger(height) || height < 1) {
    replaceChildren(view, errorBox(`Not a block height: ${heightText}`));
    return () => {};
  }
  const content = contentView();
  let block = null;
  let certResult = null;
  const settle = () => block && certResult && content.settle(block, certResult);
  const cert = certificateView(height, (r) => { certResult = r; settle(); });
  getJson(`/api/block/${height}`).then((b) => {
    block = b;
    replaceChildren(view,
      h('h2', {}, `Block ${height}`),
      h('nav', { class: 'pager' }, height > 1 ? h('a', { href: `#/block/${height - 1}` }, `‹ ${height - 1}`) : null,
        h('a', { href: `#/block/${height + 1}` }, `${height + 1} ›`)),
      cert.node, content.node,
      h('h3', {}, 'Header'), headerView(b.header_bytes),
      h('h3', {}, `Transactions (${b.txs_total ?? b.txs.length})`), txTable(b.txs),
      h('h3', {}, `Evidence (${b.evidence.length})`), evidenceList(b.evidence));
    settle();
  }).catch((e) => replaceChildren(view, h('h2', {}, `Block ${height}`), errorBox(`Could not load block ${height}: ${e.message}`), cert.node));
  return cert.stop;
}
