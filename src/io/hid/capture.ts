/** Recorded HID captures: one raw report per line in hex (spaces or colons allowed; # comments). */
export function parseCapture(text: string): Buffer[] {
  const out: Buffer[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.replace(/#.*/, '').replace(/[\s:]/g, '');
    if (!t) return;
    if (!/^([0-9a-fA-F]{2})+$/.test(t)) throw new Error(`line ${i + 1}: not hex bytes`);
    out.push(Buffer.from(t, 'hex'));
  });
  return out;
}
