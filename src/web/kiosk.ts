/**
 * The scan-to-open kiosk (issue 26, protocols.md §10): a page for a screen at the door — full
 * screen, no login, nothing on it but the door's name and its WeCom login code, which it fetches
 * again every 30 s (the code changes every 15 min). The only importer of `qrcode`.
 */
import QRCode from 'qrcode';

/** The code as an SVG (error correction M: a URL of ~200 characters stays a small, readable symbol). */
export function codeSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function kioskHtml(door: string, name: string): string {
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(name)}</title>
<link rel="stylesheet" href="/kiosk.css">
<script type="module" src="/kiosk.js"></script>
</head>
<body data-door="${esc(door)}">
<h1>${esc(name)}</h1>
<img id="code" alt="" src="/kiosk/${encodeURIComponent(door)}/code.svg">
<p id="none" hidden>—</p>
</body>
</html>
`;
}
