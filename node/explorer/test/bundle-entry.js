// What the tests import, bundled so they run from a fresh checkout without
// node_modules: the verifier itself, and noble to sign a synthetic chain.
export * from '../src/verify.js';
export { bls12_381 } from '@noble/curves/bls12-381.js';
