import { normalizeWecomUser, type NormalizedUser } from '../../src/domain/user.js';

/** Normalise a WeCom userinfo object, failing the test if it is rejected. */
export function user(raw: Record<string, unknown>): NormalizedUser {
  const r = normalizeWecomUser(raw);
  if (!r.ok) throw new Error(r.error);
  return r.user;
}
