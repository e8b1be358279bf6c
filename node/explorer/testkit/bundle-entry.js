// Entry of dist/verify.test-bundle.js, which the tests import so they run from
// a fresh checkout without node_modules: the verifier itself, and noble to
// sign a synthetic chain. (Test helpers live in testkit/, not test/, because
// `node --test test/` runs every .js file under test/.)
export * from '../src/verify.js';
export { bls12_381 } from '@noble/curves/bls12-381.js';
