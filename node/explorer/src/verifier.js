// The page's one ChainWalker and its results per height. Outcomes (verified
// or failed) are final and cached; a missing reply (FetchError, e.g. the
// certificate of the newest block not served yet) is not, so it is retried.
import { ChainWalker, FetchError } from './verify.js';

export const walker = new ChainWalker((path) => fetch(path, { cache: 'no-store' }));

const results = new Map(); // height → result
const inFlight = new Map(); // height → Promise


// → Promise of { state: 'verified' | 'failed' | 'pending', result?, error? }
export function verify(height) {
  if (results.has(height)) return Promise.resolve(stateOf(results.get(height)));
  if (!inFlight.has(height)) {
    const p = walker.verifyHeight(height)
      .then((result) => {
        results.set(height, result);
        return stateOf(result);
      })
      .catch((e) => {
        if (!(e instanceof FetchError)) console.error(e);
        return { state: 'pending', error: e.message };
      })
      .finally(() => inFlight.delete(height));
    inFlight.set(height, p);
  }
  return inFlight.get(height);
}

const stateOf = (result) => ({ state: result.ok ? 'verified' : 'failed', result });
