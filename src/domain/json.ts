/**
 * JSON parsing that keeps uint64 identifiers exact.
 *
 * WeCom sends `openvid` as a bare JSON number that may exceed 2^53; JSON.parse would round it before
 * any reviver sees it (Node 20 has no reviver source access). Bare integers of the named keys are
 * quoted before parsing. Inside a JSON string every quote is escaped, so `"openvid":` with unescaped
 * quotes can only be a key.
 */
export function parseJsonKeepingIds(text: string, keys: readonly string[] = ['openvid']): unknown {
  let quoted = text;
  for (const key of keys) {
    const re = new RegExp(`("${key}"\\s*:\\s*)(-?\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)`, 'g');
    quoted = quoted.replace(re, '$1"$2"');
  }
  return JSON.parse(quoted);
}

const UINT64_MAX = (1n << 64n) - 1n;

/** Canonical decimal string of a uint64, or an error message. Accepts strings, safe integers, bigints. */
export function toUint64String(v: unknown): { ok: true; value: string } | { ok: false; error: string } {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) return { ok: false, error: `must be a non-negative integer (got ${v})` };
    if (!Number.isSafeInteger(v)) return { ok: false, error: `lost precision as a JS number (${v}); send it as a string` };
    return { ok: true, value: String(v) };
  }
  if (typeof v === 'bigint') v = v.toString();
  if (typeof v === 'string') {
    if (!/^\d{1,20}$/.test(v)) return { ok: false, error: `must be a decimal uint64 (got ${JSON.stringify(v.slice(0, 40))})` };
    const n = BigInt(v);
    if (n > UINT64_MAX) return { ok: false, error: `exceeds uint64 (got ${v})` };
    return { ok: true, value: n.toString() };
  }
  return { ok: false, error: `must be a uint64 number or decimal string (got ${typeof v})` };
}
