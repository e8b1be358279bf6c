// Everything the explorer verifies, without the DOM: importable by the page,
// by node tests (through the committed bundle) and by anyone auditing it.
export { sha3, hexToBytes, bytesToHex } from './bytes.js';
export { decodeHeader } from './protobuf.js';
export { fastAggregateVerify, verifyPossession, publicKeyFromBytes, signatureFromBytes, SIG_DST, POP_DST } from './bls.js';
export { addressOf, validatorSetHash, ValidatorSet } from './validator_set.js';
export { genesisSet } from './genesis.js';
export { blockHash, precommitSigningBytes, verifyCommit, verifyCertificate } from './certificate.js';
export { ChainWalker, FetchError } from './chain_walker.js';
export { checkBlockContent, listHash } from './block_content.js';
