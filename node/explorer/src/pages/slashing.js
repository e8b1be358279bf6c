// #/slashing — every slash the chain recorded.
import { loadInto } from './load.js';
import { slashTable } from './slash_table.js';

export function render(view) {
  return loadInto(view, 'Slashing events', '/api/slashing', ({ events }) => slashTable('slashing-events', events));
}
