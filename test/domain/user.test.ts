import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseJsonKeepingIds, toUint64String } from '../../src/domain/json.js';
import { normalizeWecomUser } from '../../src/domain/user.js';

const fixture = (name: string): { body: { userinfo: unknown[] } } =>
  parseJsonKeepingIds(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')) as { body: { userinfo: unknown[] } };

describe('WeCom userinfo records exactly as the seeds show them', () => {
  it('keeps all users of get_userinfo_by_page, with the legacy fa template and the truncated sample key reported', () => {
    const results = fixture('wecom-get_userinfo_by_page.response.json').body.userinfo.map((u) => normalizeWecomUser(u));
    expect(results.every((r) => r.ok)).toBe(true);
    const [x1, x2] = results.map((r) => (r.ok ? r : null));
    expect(x1!.user.record).toMatchObject({ userid: 'x1', openvid: '123456', user_type: 0, name: '张三', fp_ver: 1 });
    expect(x1!.user.record.rules.map((r) => r.source)).toEqual(['9:00-10:00 * * 1-5 *', '9:30-10:00 * * 6 *']);
    expect(x1!.user.templates.map((t) => `${t.kind}/${t.id}`)).toEqual(['fp/0', 'fp/1', 'fa/0', 'fa/1']);
    expect(x2!.user.templates).toEqual([{ kind: 'fa', id: 'legacy', data: 'xxxx' }]);
    expect(x1!.user.key).toBeNull(); // "AmOVOOcprQJXEi94HPv9S" is 15 bytes: a truncated sample
    expect(x1!.warnings.join()).toMatch(/public_key unusable/);
  });

  it('keeps get_userinfo_by_ids users with their invalid 9:300 rule recorded, never matched', () => {
    const results = fixture('wecom-get_userinfo_by_ids.response.json').body.userinfo.map((u) => normalizeWecomUser(u));
    for (const r of results) {
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      expect(r.user.record.rules).toHaveLength(1);
      expect(r.user.record.invalid_rules).toEqual([expect.objectContaining({ id: 1, rule: '9:300-10:00 * * 6 *' })]);
      expect(r.user.record).not.toHaveProperty('fp_alogrithm');
    }
  });
});

describe('record validation', () => {
  it.each([
    ['not an object', 'x', /not an object/],
    ['no userid', { name: 'a' }, /userid missing/],
    ['userid over 64 bytes', { userid: '字'.repeat(22) }, /longer than 64 bytes/],
    ['user_type 5', { userid: 'a', user_type: 5 }, /user_type must be 0, 1 or 2/],
    ['openvid beyond uint64', { userid: 'a', openvid: '18446744073709551616' }, /exceeds uint64/],
    ['openvid that lost precision', { userid: 'a', openvid: 2 ** 60 }, /lost precision/],
    ['negative openvid', { userid: 'a', openvid: -1 }, /non-negative/],
    ['rules not a list', { userid: 'a', pass_rule_list: 'x' }, /pass_rule_list must be an array/],
    ['public_key not a string', { userid: 'a', public_key: 5 }, /public_key must be a base64 string/],
    ['card not a number', { userid: 'a', cards: ['12ab'] }, /card "12ab"/],
  ])('rejects %s', (_label, raw, error) => {
    const r = normalizeWecomUser(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(error);
  });

  it('treats mistyped rule entries as invalid rules, not as "no rules"', () => {
    const r = normalizeWecomUser({ userid: 'a', pass_rule_list: [{ id: 0, rule: 7 }, 'x', { id: 2, rule: '9:00-10:00 * * * *', effect_time: '1' }] });
    expect(r.ok && r.user.record.rules.length === 0 && r.user.record.invalid_rules.length === 3).toBe(true);
  });

  it('ignores templates outside the vendor slots', () => {
    const r = normalizeWecomUser({ userid: 'a', fp: [{ id: 10, data: 'x' }, { id: '3', data: 'eQ==' }], fa_list: [{ id: 12, data: 'x' }] });
    expect(r.ok && r.user.templates).toEqual([{ kind: 'fp', id: '3', data: 'eQ==' }]);
  });

  it('bounds every template, the legacy face template included (64 KiB of text each)', () => {
    const big = 'A'.repeat(64 * 1024 + 1);
    const r = normalizeWecomUser({ userid: 'a', fp: [{ id: 0, data: big }, { id: 1, data: 'eQ==' }], fa: big });
    expect(r.ok && r.user.templates).toEqual([{ kind: 'fp', id: '1', data: 'eQ==' }]);
    expect(r.ok && r.warnings.join('\n')).toMatch(/fp 0 has no usable data[\s\S]*fa has 65537 characters, more than 65536; ignored/);
    const atLimit = normalizeWecomUser({ userid: 'a', fa: 'A'.repeat(64 * 1024) });
    expect(atLimit.ok && atLimit.user.templates.map((t) => t.data.length)).toEqual([65536]);
  });
});

describe('uint64 JSON', () => {
  it('keeps openvid exact through parsing, including inside arrays and with spaces', () => {
    const v = parseJsonKeepingIds('[{"openvid" : 18446744073709551615, "name": "\\"openvid\\":1"}, {"openvid":9007199254740993}]') as { openvid: string; name: string }[];
    expect(v[0]!.openvid).toBe('18446744073709551615');
    expect(v[0]!.name).toBe('"openvid":1');
    expect(v[1]!.openvid).toBe('9007199254740993');
    expect(toUint64String(v[1]!.openvid)).toEqual({ ok: true, value: '9007199254740993' });
  });
});
