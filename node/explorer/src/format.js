// How values are shown. Amounts and power stay decimal strings / BigInts:
// they can exceed what a JS number holds exactly.
import { h } from './dom.js';

export const addressLink = (address, kind = 'validator') =>
  h('a', { href: `#/${kind}/${address}`, class: 'hex', title: address }, short(address));

export const blockLink = (height) => h('a', { href: `#/block/${height}` }, String(height));

export function short(hex) {
  return typeof hex === 'string' && hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : String(hex ?? '');
}

export const hex = (value) => h('code', { class: 'hex' }, value || '—');

export function time(ms) {
  const n = Number(ms);
  return Number.isFinite(n) && n > 0 ? new Date(n).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '—';
}

export function bps(value) {
  return `${(Number(value) / 100).toFixed(2)}%`;
}

// signed/total as "signed / total (xx.x%)", exact integer arithmetic.
export function powerShare(signed, total) {
  const permille = total > 0n ? (BigInt(signed) * 1000n) / BigInt(total) : 0n;
  return `${signed} / ${total} (${(Number(permille) / 10).toFixed(1)}%)`;
}

export const yesNo = (b) => (b ? 'yes' : 'no');
