import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Files that take tens of seconds (mostly waiting on other processes) start first, in parallel with the rest. */
const SLOW = ['test/deploy/ansible.test.ts', 'test/cli/cli.test.ts', 'test/cloud/cli-wecom.test.ts', 'test/abuse/kill9.test.ts', 'test/abuse/mqtt-abuse.test.ts'];

class SlowFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification): number => {
      const i = SLOW.findIndex((s) => f.moduleId.endsWith(s));
      return i < 0 ? SLOW.length : i;
    };
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    // Most slow files wait on brokers, gateways and Ansible rather than compute: three at once on
    // two cores, with the longest (the Ansible role) started first.
    maxWorkers: 3,
    sequence: { sequencer: SlowFirst },
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
