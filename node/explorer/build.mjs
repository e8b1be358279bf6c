// `npm run build`: bundles the page (dist/app.js, one self-contained ES module
// the node embeds) and the test bundle (dist/verify.test-bundle.js: verify.js
// plus noble for building test chains), so neither CI nor the node's build
// needs npm or node_modules.
import { build, version as esbuildVersion } from 'esbuild';
import { readFileSync } from 'node:fs';
import { sourceDigest } from './source-digest.mjs';

const version = (pkg) => JSON.parse(readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url))).version;
const banner = (what) => `/* Agora explorer ${what}. Built by esbuild ${esbuildVersion} from @noble/curves ${version('@noble/curves')}, `
  + `@noble/hashes ${version('@noble/hashes')} (MIT). Rebuild: cd node/explorer && npm ci && npm run build. source-digest ${sourceDigest()} */`;

const common = { bundle: true, format: 'esm', platform: 'neutral', target: 'es2022', legalComments: 'none', logLevel: 'info' };

await build({ ...common, entryPoints: ['src/app.js'], outfile: 'dist/app.js', minify: true, banner: { js: banner('page') } });
await build({ ...common, entryPoints: ['testkit/bundle-entry.js'], outfile: 'dist/verify.test-bundle.js', banner: { js: banner('test bundle') } });
