// The committed bundles are what the sources build to: the node embeds
// dist/app.js without running npm, so a stale or non-self-contained bundle
// must fail here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { sourceDigest } from '../source-digest.mjs';

const read = (f) => readFileSync(new URL(`../dist/${f}`, import.meta.url), 'utf8');

test('dist bundles were built from the current sources (run `npm run build`)', () => {
  const digest = sourceDigest();
  for (const f of ['app.js', 'verify.test-bundle.js']) {
    const banner = read(f).match(/source-digest ([0-9a-f]{64})/);
    assert.ok(banner, `${f} has no source-digest banner`);
    assert.equal(banner[1], digest, `dist/${f} is stale: run \`npm run build\` in node/explorer`);
  }
});

test('dist/app.js imports nothing and loads nothing from the network', () => {
  const app = read('app.js');
  assert.doesNotMatch(app, /\bimport\s*[\w{*"'(]/, 'a bundled module has no imports');
  assert.doesNotMatch(app, /https?:\/\/(?!www\.w3\.org)/, 'no absolute URLs');
  const html = readFileSync(new URL('../static/index.html', import.meta.url), 'utf8');
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'index.html loads nothing from another origin');
});
