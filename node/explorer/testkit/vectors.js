// The conformance vectors of DESIGN §9, loaded from shared/ beside the repo
// (/work/shared/test-vectors when the repo is /work/wt-js; CI lays shared/ the same way).
import { readFileSync } from 'node:fs';

const dir = new URL('../../../../shared/test-vectors/', import.meta.url);

export const agora = JSON.parse(readFileSync(new URL('agora.json', dir), 'utf8'));
export const bls = JSON.parse(readFileSync(new URL('bls.json', dir), 'utf8'));
