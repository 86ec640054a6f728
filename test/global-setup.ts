/** Build dist/ (and the native addon) once so CLI tests run the real binary as installed (and fast), from current sources. */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  // Incremental: a run with nothing changed since the last build takes a second or two, not ten.
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', '--incremental', '--tsBuildInfoFile', 'dist/.tsbuildinfo'], { stdio: 'inherit' });
  execFileSync('sh', ['scripts/copy-assets.sh'], { stdio: 'inherit' }); // the console's pages
  execFileSync('sh', ['scripts/build-native.sh'], { stdio: 'inherit' }); // the GPIO character-device addon
}
