/** The built `doorgw` command as a separate process, asynchronously (emulators in the test process keep answering meanwhile). */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const CLI_MAIN = join(ROOT, 'dist/cli/main.js'); // built by test/global-setup.ts

export function doorgwAsync(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI_MAIN, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
