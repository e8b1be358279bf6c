// #/validator/{address} — one validator record and its slash history.
import { fields, h } from '../dom.js';
import { addressLink, bps, hex, yesNo } from '../format.js';
import { loadInto } from './load.js';
import { slashTable } from './slash_table.js';

export function render(view, [address]) {
  return loadInto(view, `Validator ${address}`, `/api/validator/${address}`, ({ validator: v, slashing_events }) => [
    fields([
      ['address', hex(v.address)],
      ['operator', addressLink(v.operator, 'delegator')],
      ['consensus public key', hex(v.consensus_public_key)],
      ['power', v.power],
      ['tokens', v.tokens],
      ['shares', v.shares],
      ['commission', bps(v.commission_rate_bps)],
      ['missed blocks / window', `${v.missed_blocks} / ${v.window_counted}`],
      ['active', yesNo(v.active)],
      ['jailed', yesNo(v.jailed)],
      ['jailed until height', String(v.jailed_until)],
      ['tombstoned', yesNo(v.tombstoned)],
      ['outstanding rewards', v.outstanding_rewards],
    ]),
    h('h3', {}, 'Slash history'),
    slashTable('validator-slashes', slashing_events),
  ]);
}
