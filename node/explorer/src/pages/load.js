// Shared shape of the read-only pages: show "loading…", fetch, then render
// or show the error (never a blank page).
import { getJson } from '../api.js';
import { errorBox, h, replaceChildren } from '../dom.js';

export function loadInto(view, title, path, build) {
  replaceChildren(view, h('h2', {}, title), h('p', { class: 'muted' }, 'loading…'));
  getJson(path)
    .then((reply) => replaceChildren(view, h('h2', {}, title), build(reply)))
    .catch((e) => replaceChildren(view, h('h2', {}, title), errorBox(`Could not load ${path}: ${e.message}`)));
  return () => {};
}
