/**
 * The documentation's links hold: every relative link in README.md and docs/*.md names a file that
 * exists, and every #anchor a heading of its target (GitHub's slugs). A section referred to by its
 * quoted name ("Door hardware") is a link, so a moved section cannot leave a dead reference.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** Prose lines (fenced code left out). */
function prose(text: string): string[] {
  let fence = false;
  return text.split('\n').filter((l) => {
    if (l.startsWith('```')) fence = !fence;
    return !fence && !l.startsWith('```');
  });
}

const slug = (h: string): string => h.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-');
const anchors = (file: string): Set<string> => new Set(prose(readFileSync(file, 'utf8')).flatMap((l) => (/^#{1,6} (.*)$/.exec(l) ? [slug(/^#{1,6} (.*)$/.exec(l)![1]!)] : [])));

describe('documentation', () => {
  it('every relative link resolves, anchors included', () => {
    const broken: string[] = [];
    for (const f of files) {
      const path = join(ROOT, f);
      for (const l of prose(readFileSync(path, 'utf8'))) {
        for (const m of l.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
          const target = m[1]!;
          if (/^[a-z]+:/.test(target)) continue; // http:, https:, mailto:
          const [file, anchor] = target.split('#') as [string, string | undefined];
          const to = file === '' ? path : join(dirname(path), file);
          if (!existsSync(to)) broken.push(`${f}: ${target} (no ${relative(ROOT, to)})`);
          else if (anchor !== undefined && to.endsWith('.md') && !anchors(to).has(anchor)) broken.push(`${f}: ${target} (no heading #${anchor})`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('a section referred to by name is a link', () => {
    const headings = new Set(files.flatMap((f) => prose(readFileSync(join(ROOT, f), 'utf8')).flatMap((l) => (/^#{2,4} (.*)$/.exec(l) ? [/^#{2,4} (.*)$/.exec(l)![1]!.trim()] : []))));
    const bare: string[] = [];
    for (const f of files) {
      for (const l of prose(readFileSync(join(ROOT, f), 'utf8'))) {
        for (const m of l.replace(/`[^`]*`/g, '').matchAll(/(?<!\[)"([^"]{3,60})"/g)) if (headings.has(m[1]!)) bare.push(`${f}: "${m[1]}"`);
      }
    }
    expect(bare).toEqual([]);
  });

  it('the README stays short: what it is, the two commands, a map', () => {
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n').length).toBeLessThan(200);
  });
});
