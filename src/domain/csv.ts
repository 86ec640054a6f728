/**
 * CSV as spreadsheets and auditors read it (RFC 4180): quoted where needed, CRLF line ends, and
 * cells that a spreadsheet would run as a formula (=, +, -, @, tab or CR first) prefixed with an
 * apostrophe, which is what keeps a spreadsheet from running them (CSV quoting does not) — a userid
 * or a reader's detail text comes from outside. `csvUnescape` takes exactly that prefix off again.
 */

/** What the formula guard prefixes: the same set both ways, so a round trip keeps every name. */
const FORMULA_START = /^[=+\-@\t\r]/;

export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = typeof v === 'string' ? v : Array.isArray(v) ? v.join(';') : typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : JSON.stringify(v);
  if (FORMULA_START.test(s) && !/^-?\d+(\.\d+)?$/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A cell as written by csvCell, back to its value: the formula guard's apostrophe removed. */
export function csvUnescape(cell: string): string {
  return cell.startsWith("'") && FORMULA_START.test(cell.slice(1)) ? cell.slice(1) : cell;
}

export function csvRow(cells: readonly unknown[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

/** Parse CSV text into rows of cells (quotes, doubled quotes, CRLF or LF). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"' && cell === '') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      if (row.some((c) => c !== '')) rows.push(row);
      row = [];
      cell = '';
    } else cell += ch;
  }
  if (quoted) throw new Error('unterminated quoted cell');
  row.push(cell);
  if (row.some((c) => c !== '')) rows.push(row);
  return rows;
}
