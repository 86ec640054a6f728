/**
 * Start/stop units: the composition root starts each part of the gateway as a unit and remembers
 * what it started. A start that fails stops what had started, in reverse; a stop runs in reverse
 * with each unit's failure contained (logged, and the rest still stopped). A start that failed late
 * once left the console and MQTT running in a process that ignored SIGTERM.
 */
import type { Logger } from '../log.js';

export interface Unit {
  name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
}

export class Units {
  private readonly started: Unit[] = [];
  constructor(private readonly log: Logger) {}

  /** Start one unit; if it throws, it is not recorded (it cleans up after itself) and the error goes to the caller. */
  async start(u: Unit): Promise<void> {
    await u.start();
    this.started.push(u);
  }

  /** Record something already started (opened before the units existed), to be stopped in turn. */
  adopt(name: string, stop: () => Promise<void> | void): void {
    this.started.push({ name, start: () => undefined, stop });
  }

  /** Stop everything started, newest first; a unit that fails to stop is logged and the rest go on. */
  async stopAll(): Promise<void> {
    while (this.started.length) {
      const u = this.started.pop()!;
      try {
        await u.stop();
      } catch (e) {
        this.log.error({ err: e, unit: u.name }, 'unit failed to stop; stopping the rest');
      }
    }
  }

  get names(): string[] {
    return this.started.map((u) => u.name);
  }
}
