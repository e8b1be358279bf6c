// #/validators — every validator record, most power first.
import { h, table } from '../dom.js';
import { addressLink, bps, yesNo } from '../format.js';
import { loadInto } from './load.js';

const byPowerDesc = (a, b) => (BigInt(b.power) > BigInt(a.power) ? 1 : BigInt(b.power) < BigInt(a.power) ? -1 : 0);

export function render(view) {
  return loadInto(view, 'Validators', '/api/validators', ({ validators }) =>
    table({ id: 'validators' }, ['Address', 'Operator', 'Power', 'Tokens', 'Commission', 'Missed / window', 'Active', 'Jailed', 'Tombstoned'],
      [...validators].sort(byPowerDesc).map((v) => h('tr', { class: 'validator-row', dataset: { address: v.address } },
        h('td', {}, addressLink(v.address)), h('td', {}, addressLink(v.operator, 'delegator')),
        h('td', { class: 'num' }, v.power), h('td', { class: 'num' }, v.tokens), h('td', { class: 'num' }, bps(v.commission_rate_bps)),
        h('td', { class: 'num' }, `${v.missed_blocks} / ${v.window_counted}`), h('td', {}, yesNo(v.active)),
        h('td', {}, v.jailed ? `until ${v.jailed_until}` : 'no'), h('td', {}, yesNo(v.tombstoned))))));
}
