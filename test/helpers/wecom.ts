/** Test rig: a WeCom emulator and a gateway connected to it, both real. */
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { WecomEmulator, generateDirectory, type EmulatorOptions } from '../../src/cloud/wecom/emulator.js';
import { writeSecret } from '../../src/cloud/wecom/secret.js';
import type { WecomAdapter } from '../../src/cloud/wecom/adapter.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger, type Logger } from '../../src/log.js';
import { tmpDir } from './tmp.js';
import { until } from './wait.js';

export const SN = 'door-sn-1';
const silent = createLogger({ level: process.env.DOORGW_TEST_LOG ?? 'silent', pretty: true });

export interface Rig {
  emu: WecomEmulator;
  gw: Gateway;
  dataDir: string;
  adapter: WecomAdapter;
  restart(): Promise<void>;
  stop(): Promise<void>;
}


export async function startRig(o: {
  users?: number;
  emulator?: EmulatorOptions;
  wecom?: Record<string, unknown>;
  doors?: Record<string, unknown>[];
  provisioned?: boolean;
  emu?: WecomEmulator;
  dataDir?: string;
  /** More top-level configuration (the console, …). */
  top?: Record<string, unknown>;
  /** The gateway's logger (default: silent). */
  log?: Logger;
} = {}): Promise<Rig> {
  const emu = o.emu ?? new WecomEmulator(o.emulator);
  const url = o.emu ? emu.url : await emu.start();
  if (!o.emu) emu.seed(generateDirectory(o.users ?? 50).users);
  const dataDir = o.dataDir ?? join(tmpDir(), 'data');
  if (o.provisioned !== false) writeSecret(dataDir, { sn: SN, secret: emu.devices.get(SN)?.secret ?? emu.provision(SN) });
  const config = validateConfig(
    {
      data_dir: dataDir,
      policy: { debounce_ms: 0 },
      doors: o.doors ?? [{ id: 'front' }],
      cloud: { provider: 'wecom', wecom: { url, sn: SN, backoff_min_ms: 100, backoff_max_ms: 400, request_timeout_ms: 2000, ...o.wecom } },
      ...o.top,
    },
    'test',
  );
  const rig: Rig = {
    emu,
    dataDir,
    gw: await Gateway.start({ config, log: o.log ?? silent, controlSocket: false }),
    get adapter() {
      return rig.gw.cloud as WecomAdapter;
    },
    async restart() {
      await rig.gw.stop();
      rig.gw = await Gateway.start({ config, log: silent, controlSocket: false });
    },
    async stop() {
      await rig.gw.stop().catch(() => undefined);
      await emu.stop();
    },
  };
  return rig;
}

/** Wait until the gateway is logged in and its directory version equals the cloud's. */
export function synced(rig: Rig): Promise<boolean> {
  return until(
    async () =>
      rig.adapter.state$.value.link === 'online' &&
      rig.adapter.state$.value.directory_version === rig.emu.permVersion &&
      (await rig.gw.store.getMeta<number>('wecom.perm_version')) === rig.emu.permVersion,
    'sync',
  );
}
