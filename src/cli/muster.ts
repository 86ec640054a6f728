/**
 * `doorgw muster …` (issue 24): who is inside each area now, from the running gateway's presence
 * (for a site area, every gateway's), with the last door and time; start and end a muster (a fire
 * release starts one by itself); mark people safe, journaled with who did.
 */
import { Option, type Command } from 'commander';
import { csvRow } from '../domain/csv.js';
import type { MusterArea, MusterReport } from '../domain/muster.js';
import { cliActor, localStamp } from './args.js';
import type { CliDeps } from './wecom.js';

function table(r: MusterReport, zone: string, out: (s: string) => void): void {
  for (const a of r.areas) {
    const head = `area ${a.area}${a.site ? ' (site)' : ''}: ${a.inside.length} inside${a.started ? `, ${a.safe} safe, ${a.unaccounted} unaccounted — muster since ${localStamp(a.started.at, zone)} (${a.started.by}: ${a.started.cause})` : ''}`;
    out(head);
    if (a.stale_s !== null) out(`  WARNING: no peer of this site area heard for ${a.stale_s} s: the list may be behind`);
    for (const p of a.inside) out(`  ${p.safe ? 'SAFE ' : '     '}${p.userid.padEnd(20)} ${(p.name ?? '').padEnd(20)} since ${localStamp(p.since, zone)}  ${p.gateway ? `${p.gateway}/` : ''}${p.door ?? '?'}${p.safe ? `  (marked by ${p.safe.by})` : ''}`);
  }
}

const csv = (areas: MusterArea[], zone: string): string =>
  csvRow(['area', 'userid', 'name', 'since_local', 'since_ms', 'gateway', 'door', 'safe', 'safe_by', 'safe_at_local']) +
  areas.flatMap((a) => a.inside.map((p) => csvRow([a.area, p.userid, p.name, localStamp(p.since, zone), p.since, p.gateway, p.door, p.safe ? 'yes' : 'no', p.safe?.by, p.safe ? localStamp(p.safe.at, zone) : null]))).join('');

export function addMusterCommands(program: Command, d: CliDeps): void {
  const m = program
    .command('muster')
    .description('who is inside each area now (last door and time); a fire release starts a muster, in which people are marked safe')
    .option('--area <name>', 'only this area')
    .addOption(new Option('--format <format>', 'table, csv or json').choices(['table', 'csv', 'json']).default('table'))
    .addOption(d.configOpt())
    .action(async (o: { area?: string; format: string; config: string }) => {
      const config = await d.configFrom(o.config);
      const r = await d.withApi(o.config, (api) => api.muster({ ...(o.area !== undefined ? { area: o.area } : {}) }));
      if (o.format === 'json') return d.json(r);
      if (o.format === 'csv') return void process.stdout.write(csv(r.areas, config.timezone));
      table(r, config.timezone, d.out);
    });
  for (const [name, end] of [['start', false], ['end', true]] as const) {
    m.command(name)
      .description(end ? 'end the muster of an area' : 'begin a muster of an area (who is inside now, and safe marks from here on)')
      .requiredOption('--area <name>', 'the area')
      .addOption(d.configOpt())
      .option('--json', 'machine-readable output')
      .action(async (o: { area: string; config: string; json?: boolean }) => {
        const config = await d.configFrom(o.config);
        const r = await d.withApi(o.config, (api) => api.musterStart({ area: o.area, ...(end ? { end: true } : {}), by: cliActor() }));
        if (o.json) return d.json(r);
        table(r, config.timezone, d.out);
      });
  }
  m.command('safe')
    .description('mark a person inside the area safe (journaled with who marked)')
    .argument('<userid>')
    .requiredOption('--area <name>', 'the area')
    .addOption(d.configOpt())
    .action(async (userid: string, o: { area: string; config: string }) => {
      await d.withApi(o.config, (api) => api.musterSafe({ area: o.area, userid, by: cliActor() }));
      d.out(`${userid} marked safe in area ${o.area}`);
    });
}
