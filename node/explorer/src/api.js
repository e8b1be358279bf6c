// The node's JSON gateway (same origin). Errors carry the gateway's message.
export async function getJson(path) {
  let resp;
  try {
    resp = await fetch(path, { cache: 'no-store' });
  } catch (e) {
    throw new Error(`${path}: ${e.message}`);
  }
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    const err = new Error(`${path}: HTTP ${resp.status}${body.error ? `: ${body.error}` : ''}`);
    err.status = resp.status;
    throw err;
  }
  return resp.json();
}
