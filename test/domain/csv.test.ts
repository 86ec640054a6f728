import { describe, expect, it } from 'vitest';
import { csvCell, csvRow, csvUnescape, parseCsv } from '../../src/domain/csv.js';

describe('CSV', () => {
  it('guards every formula start with an apostrophe and takes exactly that off again: a round trip keeps every name', () => {
    const names = ['=cmd|x', '+1+1', '-2', '@SUM(A1)', '\ttabbed', '\rcr', "'quoted", 'plain', '-12.5', 'a,b "c"'];
    const back = parseCsv(csvRow(names))[0]!.map(csvUnescape);
    expect(back).toEqual(names);
    expect(csvCell('=cmd')).toBe("'=cmd");
    expect(csvCell('\tx')).toBe("'\tx");
    expect(csvCell('-12.5')).toBe('-12.5'); // a number is not a formula
    expect(csvUnescape("'plain")).toBe("'plain"); // an apostrophe the guard did not add stays
  });
});
