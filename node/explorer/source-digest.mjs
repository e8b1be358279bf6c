// Digest of everything a bundle is built from (sources + lockfile). The build
// writes it into each bundle's banner; a test recomputes it, so a change to
// src/ committed without `npm run build` fails CI instead of shipping stale JS.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const here = new URL('.', import.meta.url).pathname;

function files(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : []));
}

export function sourceDigest() {
  const inputs = [...files(join(here, 'src')), join(here, 'testkit', 'bundle-entry.js'), join(here, 'package-lock.json')]
    .map((f) => relative(here, f).split('\\').join('/'))
    .sort();
  const h = createHash('sha256');
  for (const f of inputs) h.update(`${f}\0${readFileSync(join(here, f))}\0`);
  return h.digest('hex');
}
