// The explorer page: hash routing, the header (latest height, genesis hash,
// search) and one view at a time. Verification lives in verify.js.
import { getJson } from './api.js';
import { errorBox, replaceChildren } from './dom.js';
import { walker } from './verifier.js';
import * as blocks from './pages/blocks.js';
import * as block from './pages/block.js';
import * as validators from './pages/validators.js';
import * as validator from './pages/validator.js';
import * as delegator from './pages/delegator.js';
import * as slashing from './pages/slashing.js';

const ROUTES = [
  [/^\/?$/, blocks],
  [/^\/block\/([^/]+)$/, block],
  [/^\/validators$/, validators],
  [/^\/validator\/([0-9a-f]{40})$/, validator],
  [/^\/delegator\/([0-9a-f]{40})$/, delegator],
  [/^\/slashing$/, slashing],
];

const view = document.getElementById('view');
let stopView = () => {};

function route() {
  stopView();
  const path = decodeURIComponent(location.hash.replace(/^#/, ''));
  for (const [re, page] of ROUTES) {
    const m = path.match(re);
    if (m) {
      stopView = page.render(view, m.slice(1)) ?? (() => {});
      markNav(path);
      return;
    }
  }
  stopView = () => {};
  replaceChildren(view, errorBox(`No such page: ${path}`));
}

function markNav(path) {
  for (const a of document.querySelectorAll('header nav a')) {
    const target = a.getAttribute('href').slice(1);
    a.classList.toggle('current', target === '/' ? path === '/' || path === '' || path.startsWith('/block/') : path.startsWith(target));
  }
}

// A height opens the block; an address the validator page if it is one,
// else the account (delegator) page.
async function search(event) {
  event.preventDefault();
  const input = document.getElementById('search-input');
  const q = input.value.trim().toLowerCase().replace(/^0x/, '');
  const note = document.getElementById('search-error');
  note.hidden = true;
  if (/^[0-9]+$/.test(q)) {
    location.hash = `#/block/${Number(q)}`;
  } else if (/^[0-9a-f]{40}$/.test(q)) {
    try {
      await getJson(`/api/validator/${q}`);
      location.hash = `#/validator/${q}`;
    } catch (e) {
      if (e.status === 404) location.hash = `#/delegator/${q}`;
      else Object.assign(note, { hidden: false, textContent: e.message });
    }
  } else {
    Object.assign(note, { hidden: false, textContent: 'Enter a block height or a 40-hex-digit address.' });
  }
}

async function pollStatus() {
  const el = document.getElementById('latest-height');
  const note = document.getElementById('status-error');
  try {
    const s = await getJson('/api/status');
    el.textContent = String(s.latest_height);
    document.getElementById('chain-id').textContent = s.chain_id;
    document.getElementById('peers').textContent = String(s.peers);
    note.hidden = true;
  } catch (e) {
    Object.assign(note, { hidden: false, textContent: `status: ${e.message}` });
  }
}

// The genesis hash is what the user compares with their own genesis.json.
function showGenesis() {
  const el = document.getElementById('genesis-hash');
  const done = () => {
    el.textContent = walker.genesisHash ?? 'unavailable';
    el.title = walker.failure?.from === 1 ? walker.failure.reason : 'SHA3-256 of genesis.json, computed by your browser';
    el.classList.toggle('error', walker.failure?.from === 1);
  };
  walker.init().then(done, (e) => {
    done();
    el.title = e.message;
    el.classList.add('error');
    setTimeout(showGenesis, 3000);
  });
}

document.getElementById('search').addEventListener('submit', search);
window.addEventListener('hashchange', route);
route();
pollStatus();
setInterval(pollStatus, 1000);
showGenesis();
