// #/delegator/{address} — an account, its delegations with rewards, and its
// unbonding and redelegation entries.
import { fields, h, table } from '../dom.js';
import { addressLink, blockLink, hex } from '../format.js';
import { loadInto } from './load.js';

const section = (title, rows, headings, cells, id) => [
  h('h3', {}, title),
  rows.length ? table({ id }, headings, rows.map(cells)) : h('p', { class: 'muted' }, 'None.'),
];

export function render(view, [address]) {
  return loadInto(view, `Account ${address}`, `/api/delegator/${address}`, (d) => [
    fields([['address', hex(d.account.address)], ['balance', d.account.balance], ['nonce', String(d.account.nonce)]]),
    section('Delegations', d.delegations, ['Validator', 'Shares', 'Tokens', 'Rewards'],
      (x) => [addressLink(x.validator), x.shares, x.tokens, x.rewards], 'delegations'),
    section('Unbonding', d.unbonding, ['Validator', 'Created', 'Completes', 'Initial balance', 'Balance'],
      (x) => [addressLink(x.validator), blockLink(x.creation_height), String(x.completion_height), x.initial_balance, x.balance], 'unbonding'),
    section('Redelegations', d.redelegations, ['From', 'To', 'Created', 'Completes', 'Initial balance', 'Shares at destination'],
      (x) => [addressLink(x.src_validator), addressLink(x.dst_validator), blockLink(x.creation_height), String(x.completion_height),
        x.initial_balance, x.shares_dst], 'redelegations'),
  ]);
}
