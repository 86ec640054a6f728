/** The WeCom emulator as its own process (`doorgw wecom emulator`), for benchmarks: resolves with its URL. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;

export async function emulatorProcess(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'wecom', 'emulator', '--port', '0', '--provision', 'BENCH:s3cret', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /on (ws:\/\/\S+)/.exec(buf);
      if (m) resolve(m[1]!);
    });
    child.once('exit', () => reject(new Error('emulator exited')));
  });
  return { url, child };
}
