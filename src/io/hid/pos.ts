/**
 * HID Point-of-Sale barcode scanners (usage page 0x8C) send the barcode itself, not keystrokes.
 * Decoded layout — the Scanned Data Report most HID-POS scanners use:
 *   [0x02 report id][n data length][3 bytes AIM symbology id][data …][… padding][flags]
 * where flag bit 0x01 in the last byte means more reports follow for the same barcode.
 * Reports with another id (status, feature) are ignored.
 */
export class PosDecoder {
  private parts: Buffer[] = [];
  malformed = 0;

  constructor(private readonly onScan: (text: string, symbology: string) => void) {}

  push(report: Buffer): void {
    if (report.length < 6 || report[0] !== 0x02) {
      if (report[0] !== 0x02) return;
      this.malformed++;
      return;
    }
    const n = report[1]!;
    if (5 + n > report.length - 1) {
      this.malformed++;
      this.parts = [];
      return;
    }
    const symbology = report.subarray(2, 5).toString('latin1');
    this.parts.push(report.subarray(5, 5 + n));
    const more = (report[report.length - 1]! & 0x01) === 1;
    if (more) return;
    const data = Buffer.concat(this.parts).toString('latin1');
    this.parts = [];
    if (data.length) this.onScan(data, symbology);
  }
}
