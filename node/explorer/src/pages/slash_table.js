// A table of slashing events, used by #/slashing and by the validator page.
import { h, table } from '../dom.js';
import { addressLink, blockLink, bps, hex, yesNo } from '../format.js';

// Always a table (even empty) so the page has a stable shape.
export function slashTable(id, events) {
  const t = table({ id }, ['Validator', 'Reason', 'Infraction height', 'Slash height', 'Amount', 'Fraction', 'Tombstoned',
    'From bonded / unbonding / redelegations', 'Evidence hash'],
  events.map((e) => h('tr', { class: 'slash-event', dataset: { validator: e.validator } },
    h('td', {}, addressLink(e.validator)), h('td', {}, e.reason.replaceAll('_', ' ')),
    h('td', {}, blockLink(e.infraction_height)), h('td', {}, blockLink(e.slash_height)),
    h('td', { class: 'num' }, e.amount), h('td', { class: 'num' }, bps(e.fraction_bps)), h('td', {}, yesNo(e.tombstoned)),
    h('td', { class: 'num' }, `${e.from_bonded} / ${e.from_unbonding} / ${e.from_redelegations}`),
    h('td', {}, hex(e.evidence_hash)))));
  if (!events.length) t.append(h('caption', { class: 'muted' }, 'No slashing events.'));
  return t;
}
