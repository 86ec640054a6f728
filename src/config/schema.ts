/**
 * The configuration schema: one place for defaults, types and validation messages.
 * Keys are snake_case, as in the YAML file. Unknown keys are refused (a typo must not silently
 * fall back to a default on a door controller).
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { parseHoliday } from '../domain/door-policy.js';
import { parseRule } from '../domain/rules.js';
import { CARD_FORMATS } from '../domain/cards.js';
import { DOOR_MODES } from '../domain/types.js';
import { LINKABLE_EVENTS } from '../domain/events.js';
import { linkageLoop } from '../domain/linkage.js';
import { isValidTimeZone } from '../domain/localtime.js';
import { ed25519PublicKey, keyIdOf } from '../domain/site-envelope.js';
import { DEFAULT_DATA_DIR, DEFAULT_QR_CLOCK_SKEW_S } from './errors.js';

/** Strings that may arrive as numbers or booleans from YAML or env overrides (passwords, ids). */
const str = () => z.preprocess((v) => (typeof v === 'number' || typeof v === 'boolean' ? String(v) : v), z.string());
const id = () => str().pipe(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, _ or -'));
const timezone = () => str().refine(isValidTimeZone, { message: 'not a known IANA time zone (e.g. Asia/Shanghai)' });

const relay = z
  .strictObject({
    /** `sim` records pulses in memory and logs them; `gpio` drives a pin through onoff. */
    driver: z.enum(['sim', 'gpio']).default('sim'),
    /** BCM pin number (the sysfs number is computed at run time). */
    pin: z.number().int().min(0).max(53).optional(),
    /** Or the line's name (e.g. GPIO17), looked up on every gpiochip (character device only). */
    line: str().optional(),
    active_low: z.boolean().default(false),
    pulse_ms: z.number().int().min(100).max(60_000).default(3000),
    /** fail_secure: energise to release (strike). fail_safe: energise to hold (maglock). */
    lock_type: z.enum(['fail_secure', 'fail_safe']).default('fail_secure'),
  })
  .refine((r) => r.driver !== 'gpio' || r.pin !== undefined || r.line !== undefined, { message: 'a gpio relay needs a pin (or a line name)', path: ['pin'] });

/** What every GPIO input has, a door's or a named one. */
const inputFields = {
  pin: z.number().int().min(0).max(53).optional(),
  /** Or the line's name (e.g. GPIO27), character device only. */
  line: str().optional(),
  /** The logical level is active when the line reads 0 (a contact to ground with the pull-up). */
  active_low: z.boolean().default(true),
  debounce_ms: z.number().int().min(0).max(5000).default(50),
};
const hasLine = (x: { pin?: number | undefined; line?: string | undefined }): boolean => x.pin !== undefined || x.line !== undefined;
const needsLine = { message: 'an input needs a pin (or a line name)', path: ['pin'] };

const input = z.strictObject(inputFields).refine(hasLine, needsLine);

/** The doors' own keys, as `doorgw site door-key` prints each entry: one per gateway. */
export const doorKeysSchema = () =>
  z
    .array(
      z
        .strictObject({
          gateway: id(),
          kid: str().pipe(z.string().regex(/^[0-9a-f]{32}$/, 'a key id as doorgw site door-key prints it')),
          public_key: str(),
          /** Threat levels this door may raise by its inputs (linkage site_level): only these, only as facts, never a deletion. */
          may_raise: z.array(id()).default([]),
        })
        .superRefine(kidIsItsKeys),
    )
    .default([])
    .refine((l) => new Set(l.map((k) => k.gateway)).size === l.length, 'one key per gateway');

/** A key id that is not its key's would make every message signed with it unknown, silently. */
function kidIsItsKeys(k: { kid: string; public_key: string }, ctx: z.RefinementCtx): void {
  let kid: string;
  try {
    kid = keyIdOf(ed25519PublicKey(k.public_key));
  } catch (e) {
    return void ctx.addIssue({ code: 'custom', message: (e as Error).message, path: ['public_key'] });
  }
  if (kid !== k.kid) ctx.addIssue({ code: 'custom', message: `is not this public key's id (${kid})`, path: ['kid'] });
}

/** What a named input means when it is active: an alarm of that kind (journaled, on MQTT), or nothing of itself (`none`: for linkage rules). */
export const INPUT_ALARMS = ['none', 'tamper', 'ups_battery', 'power_fail', 'panic', 'alarm'] as const;

const namedInput = z
  .strictObject({
    ...inputFields,
    /**
     * The line's pull resistor, set by the character device (with sysfs: in config.txt, e.g.
     * `gpio=5=ip,pu`). A supervised fire input needs the pull-up: see docs/hardware.md.
     */
    bias: z.enum(['as-is', 'pull-up', 'pull-down', 'disabled']).default('as-is'),
    alarm: z.enum(INPUT_ALARMS).default('none'),
    /** A human name for logs, the console and Home Assistant. */
    name: str().optional(),
  })
  .refine(hasLine, needsLine);

const namedOutput = z
  .strictObject({
    /** gpio drives the line (sysfs or the character device, as gpio.backend says); sim records in memory. */
    driver: z.enum(['gpio', 'sim']).default('gpio'),
    pin: z.number().int().min(0).max(53).optional(),
    line: str().optional(),
    /** On is the line at 0 (relay boards that switch on a low input). */
    active_low: z.boolean().default(false),
    name: str().optional(),
  })
  .refine((x) => x.driver === 'sim' || x.pin !== undefined || x.line !== undefined, { message: 'a gpio output needs a pin (or a line name)', path: ['pin'] });

const linkAction = z.union([
  z.strictObject({ output: id(), pulse_s: z.number().min(0.1).max(86_400) }),
  z.strictObject({ output: id(), while_active: z.literal(true) }),
  z.strictObject({ doors: z.array(id()).min(1).optional(), mode: z.enum(DOOR_MODES), duration_s: z.number().int().min(1).max(30 * 86_400).optional() }),
  z.strictObject({ alarm: str().pipe(z.string().min(1).max(200)) }),
  z.strictObject({ deny_groups: z.array(id()).min(1), doors: z.array(id()).min(1).optional() }),
  /** Raise the site's threat level (a panic button): signed with this door's key, which site.door_keys must allow (may_raise). */
  z.strictObject({ site_level: id(), scope: id().default('site') }),
]);

const linkRule = z.strictObject({
  name: id(),
  on: z.union([
    z.strictObject({ input: id(), state: z.enum(['active', 'inactive']).default('active') }),
    z.strictObject({ event: z.enum(LINKABLE_EVENTS), door: id().optional() }),
  ]),
  do: z.array(linkAction).min(1).max(16),
});

/**
 * The gateway's own inputs and outputs beyond each door's relay, exit button and contact; fire
 * release; linkage rules.
 */
const io = z.strictObject({
  inputs: z.record(id(), namedInput).default({}),
  outputs: z.record(id(), namedOutput).default({}),
  /**
   * Fire release: while the input is active, the doors (default: every door of the gateway) are
   * released, whatever their mode; latched (default) they stay released after it clears, until
   * an operator resets (`doorgw fire reset`).
   */
  fire: z
    .array(
      z.strictObject({
        input: id(),
        doors: z.array(id()).min(1).optional(),
        latch: z.boolean().default(true),
      }),
    )
    .default([]),
  /** A release by the site's fire threat level latches too (it is reset like an input's). */
  site_fire_latch: z.boolean().default(true),
  linkage: z.array(linkRule).max(200).default([]),
});

/**
 * Accounts of the shipped broker ACL (a reader logs in under its id and would get their rights),
 * and the names the gateway's own sources use in the journal.
 */
export const RESERVED_READER_IDS = ['doorgw', 'operator', 'admin', 'homeassistant', 'exit_button', 'fingerprint', 'mqtt', 'wecom', 'feishu'] as const;

/** What a reader may present. A reader cannot vouch for more than it can sense. */
export const CREDENTIAL_KINDS = ['card', 'qr', 'userid', 'face', 'fingerprint'] as const;
/** By type: a scanner reads codes; a local MQTT reader sends cards and codes unless it says more. */
export const DEFAULT_READER_KINDS = { terminal: CREDENTIAL_KINDS, hid: ['qr'], mqtt: ['card', 'qr'], wiegand: ['card'], osdp: ['card'] } as const;
/** Default rate limits by type (null: none). A person presents a credential every second or so. */
export const DEFAULT_READER_RATE = { terminal: null, hid: { per_s: 5, burst: 20 }, mqtt: { per_s: 5, burst: 20 }, wiegand: { per_s: 5, burst: 20 }, osdp: { per_s: 5, burst: 20 } } as const;

/** What an OSDP reader shows and sounds on a decision (after the relay has moved). */
const OSDP_COLORS = ['black', 'red', 'green', 'amber', 'blue', 'magenta', 'cyan', 'white'] as const;
const osdpSignal = (led: (typeof OSDP_COLORS)[number], beepMs: number, text: string) =>
  z
    .strictObject({
      led: z.enum(OSDP_COLORS).default(led),
      led_ms: z.number().int().min(100).max(25_000).default(2000),
      /** One beep this long (0: silent); `beeps` of them. */
      beep_ms: z.number().int().min(0).max(25_000).default(beepMs),
      beeps: z.number().int().min(0).max(10).default(1),
      /** On readers with a display (ASCII; at most 32 characters). */
      text: str().pipe(z.string().max(32)).default(text),
    })
    .default({ led, led_ms: 2000, beep_ms: beepMs, beeps: 1, text });
const osdpFeedback = z
  .strictObject({
    grant: osdpSignal('green', 200, 'Welcome'),
    deny: osdpSignal('red', 1000, 'Access denied'),
    /** The LED between decisions, by door mode. */
    idle_led: z.strictObject({ normal: z.enum(OSDP_COLORS).default('black'), passage: z.enum(OSDP_COLORS).default('green'), lockdown: z.enum(OSDP_COLORS).default('red') }).default({ normal: 'black', passage: 'green', lockdown: 'red' }),
  })
  .default({
    grant: { led: 'green', led_ms: 2000, beep_ms: 200, beeps: 1, text: 'Welcome' },
    deny: { led: 'red', led_ms: 2000, beep_ms: 1000, beeps: 1, text: 'Access denied' },
    idle_led: { normal: 'black', passage: 'green', lockdown: 'red' },
  });

/** What every reader kind has. */
const readerCommon = {
  id: id().refine((v) => !(RESERVED_READER_IDS as readonly string[]).includes(v.toLowerCase()), {
    message: `must not be one of the broker accounts or the gateway's own source names (${RESERVED_READER_IDS.join(', ')}): a reader logs in under its id`,
  }),
  direction: z.enum(['in', 'out', 'unknown']).default('in'),
  /**
   * Credential kinds this reader may present (default by type: terminal all (development), hid qr,
   * mqtt card/qr). Anything else it sends is denied (credential_not_allowed) and raises an alarm:
   * a card reader must not be able to assert a face match.
   */
  accepts: z.array(z.enum(CREDENTIAL_KINDS)).min(1).optional(),
  /**
   * Credentials per second this reader may send (a burst of `burst` allowed); the excess is
   * dropped and reported, so a flooding reader cannot starve the others. Default for hid and mqtt
   * readers 5/s with bursts of 20; none for the development terminal.
   */
  rate_limit: z
    .strictObject({ per_s: z.number().min(0.1).max(10_000).default(5), burst: z.number().int().min(1).max(100_000).default(20) })
    .optional(),
  /** Card bits (Wiegand frames from a bridge, OSDP and GPIO Wiegand): their format and which number (domain/cards.ts). */
  card_format: z.enum(CARD_FORMATS).default('auto'),
  card_number: z.enum(['full', 'card']).default('full'),
  /** Card and PIN: how long a card waits for its PIN (ending with #). */
  pin_wait_ms: z.number().int().min(1000).max(60_000).default(10_000),
};

/**
 * A reader: one schema per kind (`type`), so a key of another kind (`d0` on a USB scanner) is
 * refused by name instead of being ignored. terminal: scans typed or pasted on the console
 * (development). hid: USB scanner. mqtt: local reader topic. wiegand: a Wiegand reader or keypad on
 * two GPIO lines (the character device). osdp: an OSDP reader on an RS-485 bus (`path`, `address`,
 * `baud_rate`; several per bus).
 */
const reader = z.discriminatedUnion('type', [
  z.strictObject({ ...readerCommon, type: z.literal('terminal') }),
  z.strictObject({ ...readerCommon, type: z.literal('mqtt') }),
  z.strictObject({
    ...readerCommon,
    type: z.literal('hid'),
    vendor_id: z.number().int().min(0).max(0xffff).optional(),
    product_id: z.number().int().min(0).max(0xffff).optional(),
    serial: str().optional(),
    path: str().optional(),
    /** keyboard-mode (boot keyboard reports) or pos (HID-POS, usage page 0x8C). */
    mode: z.enum(['keyboard', 'pos']).default('keyboard'),
    /** keyboard mode: the layout the scanner types in. */
    layout: z.enum(['us', 'de']).default('us'),
    /** keyboard mode: the key that ends a scan. */
    terminator: z.enum(['enter', 'tab', 'none']).default('enter'),
    /** keyboard mode: a scan also ends after this long without a key. */
    idle_ms: z.number().int().min(0).max(5000).default(150),
  }),
  z
    .strictObject({
      ...readerCommon,
      type: z.literal('wiegand'),
      /** The D0 and D1 lines (BCM numbers, through a level shifter from 5 V readers). */
      d0: z.number().int().min(0).max(53).optional(),
      d1: z.number().int().min(0).max(53).optional(),
      /** The reader's LED and beeper inputs, where wired (active low, as most readers take them). */
      led: z.number().int().min(0).max(53).optional(),
      beeper: z.number().int().min(0).max(53).optional(),
      feedback_active_low: z.boolean().default(true),
      /** The Pi's pull-up on D0/D1 (the reader's own pull-ups are on its 5 V side). */
      bias: z.enum(['pull-up', 'as-is']).default('pull-up'),
    })
    .superRefine((r, ctx) => {
      if (r.d0 === undefined || r.d1 === undefined) ctx.addIssue({ code: 'custom', message: 'a wiegand reader needs d0 and d1 (GPIO lines)', path: [r.d0 === undefined ? 'd0' : 'd1'] });
      const pins = [r.d0, r.d1, r.led, r.beeper].filter((p) => p !== undefined);
      if (new Set(pins).size !== pins.length) ctx.addIssue({ code: 'custom', message: 'd0, d1, led and beeper must be different lines', path: ['d1'] });
    }),
  z
    .strictObject({
      ...readerCommon,
      type: z.literal('osdp'),
      path: str().optional(),
      /** The reader's address on its bus (0–126; 127 is broadcast). */
      address: z.number().int().min(0).max(126).default(0),
      /** The bus speed (every reader on one bus the same). */
      baud_rate: z.union([z.literal(9600), z.literal(19200), z.literal(38400), z.literal(57600), z.literal(115200)]).default(9600),
      /** Require the secure channel with the reader's own key (enrolled with `doorgw osdp enroll`). false: plaintext, for readers without it. */
      secure: z.boolean().default(true),
      /** CRC-16, the 8-bit checksum, or auto (CRC, falling back to the checksum for readers that NAK it). */
      check: z.enum(['crc', 'checksum', 'auto']).default('auto'),
      /** A poll cycle over the bus starts at most this often (card-to-relay latency is about half of it plus the wire). */
      poll_interval_ms: z.number().int().min(5).max(1000).default(30),
      /** LED, beeps and text on grant and deny, and the LED by door mode. */
      feedback: osdpFeedback,
    })
    .superRefine((r, ctx) => {
      if (r.path === undefined) ctx.addIssue({ code: 'custom', message: 'an osdp reader needs path (the RS-485 adapter, e.g. /dev/serial/by-id/usb-FTDI_…)', path: ['path'] });
    }),
]);

/** A door's policies beside each user's own rules (see domain/door-policy.ts). */
const doorPolicy = z.strictObject({
  /** Holiday calendars (top-level `holidays`) this door observes. */
  holidays: z.array(id()).default([]),
  /** Closed on those days: every credential is denied `holiday` except holiday_exempt_groups. */
  closed_on_holidays: z.boolean().default(false),
  holiday_exempt_groups: z.array(id()).default([]),
  /** Groups who still pass while the door is in lockdown (grant reason lockdown_override). */
  lockdown_override_groups: z.array(id()).default([]),
  /** A longer unlock for these groups (accessibility). */
  extended_unlock: z.strictObject({ groups: z.array(id()).min(1), pulse_ms: z.number().int().min(100).max(120_000) }).optional(),
  /** Card and PIN: a card is admitted only with the person's PIN typed on the reader (local directory PINs). */
  card_and_pin: z.boolean().default(false),
  /** Timed anti-passback: the same person may not pass this door again within this many seconds. */
  anti_passback_s: z.number().int().min(1).max(86_400).optional(),
  /** Two-person rule: a second, different, authorised person must present within this many seconds. */
  two_person_s: z.number().int().min(1).max(600).optional(),
  /**
   * Passage on a schedule: during a window (WeCom rule grammar, e.g. `8:00-18:00 * * 1-5 *`) the
   * lock is held released. first_person_in: only once a member of these groups (or any employee)
   * has been granted inside the window.
   */
  passage: z
    .strictObject({
      schedule: z.array(str().refine((r) => parseRule(r).ok, { message: 'not a valid rule (e.g. 8:00-18:00 * * 1-5 *)' })).min(1),
      suspend_on_holidays: z.boolean().default(true),
      first_person_in: z.strictObject({ groups: z.array(id()).default([]), employees: z.boolean().default(false) }).optional(),
    })
    .optional(),
});
/** Who may state what on the site bus by default: guards open and set levels, admins change the directory. */
const SITE_PERMISSIONS: Record<string, string[]> = {
  open: ['guard', 'admin'],
  lock: ['guard', 'admin'],
  mode: ['guard', 'admin'],
  fire_reset: ['guard', 'admin'],
  threat_level: ['guard', 'admin'],
  block: ['guard', 'admin'],
  user: ['admin'],
  door_mode: ['admin'],
  manifest: ['guard', 'admin'],
  journal_range: ['collector', 'admin'],
};
const SITE_LEVELS = [
  { name: 'normal', deny_groups: [], override_groups: [], doors: {} },
  { name: 'elevated', deny_groups: [], override_groups: [], doors: {} },
  { name: 'lockdown', mode: 'lockdown' as const, deny_groups: [], override_groups: [], doors: {} },
  { name: 'fire', mode: 'passage' as const, deny_groups: [], override_groups: [], doors: {} },
];

const NO_DOOR_POLICY = { holidays: [], closed_on_holidays: false, holiday_exempt_groups: [], lockdown_override_groups: [], card_and_pin: false };

const door = z.strictObject({
  id: id(),
  name: str().optional(),
  /** The door's standing mode: lockdown denies every credential (exit requests still open); passage holds the lock released. */
  mode: z.enum(DOOR_MODES).default('normal'),
  /** Overrides the gateway time zone for this door's pass rules. */
  timezone: timezone().optional(),
  relay: relay.default({ driver: 'sim', active_low: false, pulse_ms: 3000, lock_type: 'fail_secure' }),
  inputs: z.strictObject({ exit_button: input.optional(), door_contact: input.optional() }).default({}),
  readers: z.array(reader).default([]),
  policy: doorPolicy.default(NO_DOOR_POLICY),
  /**
   * A fingerprint module at this door: `r30x` (R305/R307/R503/ZFM/AS608 on a serial port: `path`,
   * `baud_rate`, `password`), or `sim` for development.
   */
  fingerprint: z
    .strictObject({
      driver: z.enum(['sim', 'r30x']),
      path: str().optional(),
      baud_rate: z.number().int().refine((b) => [9600, 19200, 38400, 57600, 115200].includes(b), 'one of 9600, 19200, 38400, 57600, 115200').default(57600),
      password: z.number().int().min(0).max(0xffffffff).default(0),
    })
    .refine((f) => f.driver !== 'r30x' || f.path !== undefined, { message: 'an r30x module needs path (its serial port, e.g. /dev/ttyUSB0)', path: ['path'] })
    .optional(),
  /**
   * A lift car: its readers' grants enable the floors the person may select, each floor an output
   * (io.outputs: the car's floor-enable relays), for `enable_s`.
   */
  lift: z
    .strictObject({
      /**
       * The floors, bottom to top: each its name and the output that enables its button. A list,
       * not a map: floors named 1, 2, 3 would lose their order as keys of a map.
       */
      floors: z.array(z.strictObject({ floor: str().pipe(z.string().regex(/^[A-Za-z0-9_-]{1,16}$/, 'a floor name is 1-16 letters, digits, _ or -')), output: id() })).min(1).max(256),
      /** Group (config `groups`) → floors its members may select. */
      groups: z.record(id(), z.array(str())).default({}),
      /** Floors every granted person may select. */
      everyone: z.array(str()).default([]),
      enable_s: z.number().int().min(1).max(600).default(10),
      /** Floors on free access by schedule (rules as for passage, e.g. 8:00-18:00 * * 1-5 *). */
      free_access: z.array(z.strictObject({ floors: z.array(str()).min(1), schedule: z.array(str().refine((r) => parseRule(r).ok, { message: 'not a valid rule (e.g. 8:00-18:00 * * 1-5 *)' })).min(1) })).default([]),
      /** What a fire release of this car opens: every floor (default), none, or these floors (the lift's own fire recall is its controller's). */
      fire: z.union([z.enum(['all', 'none']), z.array(str())]).default('all'),
    })
    .optional(),
  /** Door-contact alarms (need inputs.door_contact). */
  alarms: z
    .strictObject({
      /** A valid opening may stay open this long before the held-open alarm. */
      held_open_s: z.number().int().min(5).max(3600).default(30),
      /** Pre-alarm this many seconds before held-open. */
      prealarm_s: z.number().int().min(0).max(600).default(10),
      /** After the pulse ends, the door may still be pushed open this long without a forced-open alarm. */
      open_grace_s: z.number().int().min(0).max(60).default(3),
      /** End the pulse as soon as the door closes again. */
      relock_on_close: z.boolean().default(true),
      /** `count` denials within `within_s` at this door raise deny_burst (absent: off). */
      deny_burst: z.strictObject({ count: z.number().int().min(2).max(1000), within_s: z.number().int().min(1).max(3600) }).optional(),
    })
    .default({ held_open_s: 30, prealarm_s: 10, open_grace_s: 3, relock_on_close: true }),
});

const wecom = z.strictObject({
  /** The device-protocol WebSocket (protocols.md §1; the vendor host is unverified). */
  url: str().default('wss://openhw.work.weixin.qq.com/websocket'),
  /** Device serial number used for provisioning; defaults to gateway_id. */
  sn: str().optional(),
  firmware_version: str().optional(),
  page_size: z.number().int().min(1).max(200).default(200),
  request_timeout_ms: z.number().int().min(500).max(120_000).default(10_000),
  ping_interval_s: z.number().int().min(20).max(40).default(30),
  backoff_min_ms: z.number().int().min(100).max(60_000).default(1000),
  backoff_max_ms: z.number().int().min(100).max(3_600_000).default(60_000),
  max_sync_restarts: z.number().int().min(1).max(50).default(5),
  upload_batch: z.number().int().min(1).max(200).default(200),
  upload_max_attempts: z.number().int().min(1).max(1000).default(10),
  /** checkin pass_method for QR codes: 2 "QR code", or 6 "the device scans the phone's code". */
  qr_pass_method: z.union([z.literal(2), z.literal(6)]).default(2),
  /** Door opened by push_remote_open_door; the first door by default. */
  remote_open_door: id().optional(),
  /**
   * Scan to open (protocols.md §10): each door shows a dynamic login code (the kiosk page
   * /kiosk/<door> of the console, or /kiosk/<door>/code.svg), made again every 15 min; a scan in the
   * WeCom app is decided as that person's credential at that door.
   */
  scan_to_open: z.boolean().default(true),
});

const topicSegment = () =>
  str().pipe(
    z.string().refine((t) => /^[^#+/]+(\/[^#+/]+)*$/.test(t) && !t.includes(String.fromCharCode(0)), 'must be a topic without wildcards (#, +) or empty levels'),
  );

const mqtt = z.strictObject({
  enabled: z.boolean().default(false),
  url: str().default('mqtt://localhost:1883'),
  /** 5 (MQTT 5, default: Mosquitto 2) or 4 (MQTT 3.1.1). */
  protocol_version: z.union([z.literal(5), z.literal(4)]).default(5),
  username: str().optional(),
  /** Secret: prefer DOORGW_MQTT__PASSWORD in the service environment. */
  password: str().optional(),
  /** Unique per gateway; default doorgw-<gateway_id>. */
  client_id: str().optional(),
  base_topic: topicSegment().default('doorgw'),
  /** TLS: CA bundle, client certificate and key (PEM file paths). */
  ca: str().optional(),
  cert: str().optional(),
  key: str().optional(),
  reject_unauthorized: z.boolean().default(true),
  keepalive_s: z.number().int().min(5).max(3600).default(30),
  /** Events kept while the broker is unreachable; older ones are dropped beyond this. */
  offline_queue: z.number().int().min(0).max(100_000).default(1000),
  /**
   * Largest MQTT packet the gateway accepts (MQTT 5 tells the broker, which then drops larger
   * messages for us). Reader credentials and requests are small.
   */
  max_packet_size: z.number().int().min(1024).max(16 * 1024 * 1024).default(64 * 1024),
  /**
   * Largest packet the broker accepts (its max_packet_size; 1 MiB in the shipped configuration).
   * The gateway never sends more: a reply that would not fit is answered with a `too_large` error.
   * An MQTT 5 broker that advertises a lower limit when it accepts the connection lowers this.
   */
  broker_max_packet_size: z.number().int().min(1024).max(256 * 1024 * 1024).default(1024 * 1024),
  /** User fields included in access events (names are personal data: opt in). */
  event_user_fields: z.array(z.enum(['userid', 'user_type', 'name'])).default(['userid', 'user_type']),
  home_assistant: z
    .strictObject({ enabled: z.boolean().default(true), prefix: topicSegment().default('homeassistant') })
    .default({ enabled: true, prefix: 'homeassistant' }),
});

const feishu = z.strictObject({
  app_id: str().pipe(z.string().min(1, 'app_id is required')),
  /** Secret: prefer DOORGW_CLOUD__FEISHU__APP_SECRET in the service environment. */
  app_secret: str().pipe(z.string().min(1, 'app_secret is required')),
  base_url: str().default('https://open.feishu.cn'),
  user_id_type: z.enum(['open_id', 'union_id', 'user_id']).default('open_id'),
  page_size: z.number().int().min(1).max(50).default(50),
  sync_interval_s: z.number().int().min(10).max(86_400).default(300),
  request_timeout_ms: z.number().int().min(500).max(120_000).default(10_000),
  max_retries: z.number().int().min(0).max(20).default(5),
  backoff_ms: z.number().int().min(10).max(60_000).default(500),
  /**
   * Permission groups (rule_external, protocols.md §15): each door's Feishu device id. With them,
   * and once an admin has authorised the gateway (doorgw feishu authorize), a person passes a door
   * only in a group bound to its device, on its days and hours. Without: every listed person passes
   * every door (a warning at start and in status).
   */
  permission_groups: z
    .strictObject({
      devices: z.record(id(), str()).default({}),
      /** Where Feishu sends the admin after authorising (registered in the app); the page shows the code to paste. */
      redirect_uri: str().default('https://open.feishu.cn/api-explorer/loading'),
      /** How often the groups are read again (s). */
      refresh_s: z.number().int().min(60).max(86_400).default(600),
    })
    .default({ devices: {}, redirect_uri: 'https://open.feishu.cn/api-explorer/loading', refresh_s: 600 }),
  /**
   * Event callbacks (protocols.md §16): Feishu POSTs events to `/cloud/feishu/events` of the web
   * console (web.enabled; reachable from Feishu, e.g. through the site's reverse proxy). A user's
   * changed card (acs.user.updated_v1) is read again at once, and the permission groups with it.
   * Secrets: prefer DOORGW_CLOUD__FEISHU__EVENTS__VERIFICATION_TOKEN / …__ENCRYPT_KEY.
   */
  events: z
    .strictObject({
      /** The app's Verification Token (event subscription page). */
      verification_token: str().pipe(z.string().min(1, 'verification_token is required')),
      /** The app's Encrypt Key: with it, events are encrypted and signed, and unsigned ones refused. */
      encrypt_key: str().optional(),
    })
    .optional(),
});

/** WeCom self-built app credentials for the pass-record API (reconciliation). */
const wecomApp = z.strictObject({
  corpid: str().pipe(z.string().min(1)),
  /** Secret: prefer DOORGW_CLOUD__WECOM_APP__CORPSECRET in the service environment. */
  corpsecret: str().pipe(z.string().min(1)),
  agentid: z.number().int().optional(),
  base_url: str().default('https://qyapi.weixin.qq.com'),
  /** This door's device SN as WeCom knows it; defaults to cloud.wecom.sn, else gateway_id. */
  device_sn: str().optional(),
  /** user_type values to query (0 members, 2 students). */
  user_types: z.array(z.union([z.literal(0), z.literal(2)])).min(1).default([0]),
  request_timeout_ms: z.number().int().min(500).max(120_000).default(10_000),
});

export const configSchema = z
  .strictObject({
    version: z.literal(1).default(1),
    gateway_id: id().default(() => hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64) || 'doorgw'),
    data_dir: str().default(DEFAULT_DATA_DIR),
    timezone: timezone().default('Asia/Shanghai'),
    log: z
      .strictObject({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        /** auto: pretty on a terminal, JSON otherwise. */
        pretty: z.union([z.boolean(), z.literal('auto')]).default('auto'),
      })
      .default({ level: 'info', pretty: 'auto' }),
    policy: z
      .strictObject({
        /** Who passes when the cloud assigned no pass rules (vendor default: employees and students). */
        default_allow: z
          .strictObject({ employee: z.boolean().default(true), visitor: z.boolean().default(false), student: z.boolean().default(true) })
          .default({ employee: true, visitor: false, student: true }),
        /** Deny an employee QR code already accepted while it is still valid. */
        replay_protection: z.boolean().default(true),
        /** The same credential at the same door within this window is one read. */
        debounce_ms: z.number().int().min(0).max(60_000).default(1500),
      })
      .default({ default_allow: { employee: true, visitor: false, student: true }, replay_protection: true, debounce_ms: 1500 }),
    qr: z
      .strictObject({ clock_skew_s: z.number().int().min(0).max(600).default(DEFAULT_QR_CLOCK_SKEW_S) })
      .default({ clock_skew_s: DEFAULT_QR_CLOCK_SKEW_S }),
    journal: z
      .strictObject({
        max_entries: z.number().int().min(1000).max(10_000_000).default(100_000),
        /** Decisions and door events older than this many days are deleted (null: by count only). */
        max_age_days: z.number().int().min(1).max(3650).nullable().default(400),
        /**
         * batched: the relay moves first, the record is on disk one group commit later (a few ms;
         * a kill -9 inside that window loses it). strict: a grant's record (and its replay memory)
         * is on disk before the relay moves, at the cost of one fsync per grant.
         */
        durability: z.enum(['batched', 'strict']).default('batched'),
        /** Records kept in memory while the disk cannot be written; beyond this the oldest go (loudly). */
        memory_max_entries: z.number().int().min(100).max(1_000_000).default(50_000),
      })
      .default({ max_entries: 100_000, max_age_days: 400, durability: 'batched', memory_max_entries: 50_000 }),
    /** Backups requested over MQTT go only here (absent: refused over MQTT; the CLI may write anywhere but the data directory). */
    backup: z.strictObject({ dir: str().optional() }).default({}),
    /** Disk-full protection for the data directory. */
    storage: z
      .strictObject({
        /** A file of this size is kept in the data directory and released when the disk fills, so the database can recover. */
        reserve_mb: z.number().int().min(0).max(4096).default(16),
        /** Below this much free space the gateway reports unhealthy and raises disk_low. */
        low_space_mb: z.number().int().min(1).max(65_536).default(64),
        /** How often free space is checked (while writes fail: every 2 s). */
        check_interval_s: z.number().int().min(1).max(3600).default(30),
      })
      .default({ reserve_mb: 16, low_space_mb: 64, check_interval_s: 30 }),
    /** sysfs GPIO (Raspberry Pi OS bookworm): BCM numbers map to sysfs numbers at run time. */
    gpio: z
      .strictObject({
        /**
         * cdev: the GPIO character device (/dev/gpiochipN; kernel timestamps and debounce; the only
         * interface on Raspberry Pi OS trixie). sysfs: /sys/class/gpio through onoff. auto: cdev
         * where a gpiochip device exists and doorgw's addon is built, else sysfs.
         */
        backend: z.enum(['auto', 'cdev', 'sysfs']).default('auto'),
        /** The gpiochip device (default: the one labelled like a Raspberry Pi pin controller). */
        chip: str().optional(),
        sysfs_root: str().default('/sys/class/gpio'),
        /** Label of the SoC pin controller's gpiochip; the known Raspberry Pi labels by default. */
        chip_label: str().optional(),
        /** Explicit sysfs number of BCM 0 (overrides detection). */
        base: z.number().int().min(0).max(4096).optional(),
      })
      .default({ backend: 'auto', sysfs_root: '/sys/class/gpio' }),
    control: z
      .strictObject({ socket: str().optional() })
      .default({}),
    /**
     * Interlocks (mantraps): named groups of doors of this gateway of which only one may be open or
     * released at a time; a grant at one while another is open or released is denied `interlock`.
     */
    interlocks: z.record(id(), z.array(id()).min(2)).default({}),
    io: io.default({ inputs: {}, outputs: {}, fire: [], site_fire_latch: true, linkage: [] }),
    /**
     * The site (issue 23, first piece): signed site commands over the broker. Every message is an
     * Ed25519 envelope from a trusted key (`doorgw site key new`) whose roles may state it.
     */
    site: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** Site topics: commands arrive on `<base_topic>/command` (bridged from the site broker). */
        base_topic: topicSegment().default('doorgw-site'),
        /** Site areas this gateway's doors are in (besides its anti-passback area names). */
        areas: z.array(id()).default([]),
        /** Trusted keys: id, holder, raw public key (base64) and roles. */
        keys: z
          .array(
            z
              .strictObject({ kid: str().pipe(z.string().regex(/^[0-9a-f]{32}$/, 'a key id as doorgw site key new prints it')), name: str(), public_key: str(), roles: z.array(id()).min(1) })
              .superRefine(kidIsItsKeys),
          )
          .default([]),
        /**
         * The doors' own keys (`doorgw site door-key` on each door prints its entry): the site tool
         * believes a door's report only when signed by its gateway's key. Empty: reports are read,
         * marked unsigned.
         */
        door_keys: doorKeysSchema(),
        /** Which roles may state which subject types (commands: open, lock, mode; facts: threat_level, block, user, door_mode, manifest). */
        permissions: z.record(id(), z.array(id())).default(SITE_PERMISSIONS),
        /**
         * Threat levels, least severe first: what each does at a door while it holds (the most
         * severe of the site's level and its areas' levels holds). A level nobody configured holds as
         * a lockdown: an unknown level never relaxes a door.
         */
        levels: z
          .array(
            z.strictObject({
              name: id(),
              mode: z.enum(DOOR_MODES).optional(),
              deny_groups: z.array(id()).default([]),
              override_groups: z.array(id()).default([]),
              doors: z.record(id(), z.strictObject({ mode: z.enum([...DOOR_MODES, 'none']) })).default({}),
              /** A fire release at every door it holds (io.site_fire_latch says whether it latches); default: true for the level named fire. */
              fire_release: z.boolean().optional(),
            }),
          )
          .min(1)
          .default(SITE_LEVELS)
          .refine((l) => new Set(l.map((x) => x.name)).size === l.length, 'level names must differ'),
        /**
         * Levels on a schedule (e.g. `elevated` every night): evaluated by each door from its own
         * clock and this list (the same on every door: no message, so a partition changes nothing).
         * A window ending before it starts runs past midnight; days 1 = Monday … 7 = Sunday, the
         * day the window starts. The most severe of scheduled and signed levels holds.
         */
        level_schedule: z
          .array(
            z.strictObject({
              level: id(),
              /** `site`, or an area (site.areas or an anti-passback area). */
              scope: id().default('site'),
              days: z.array(z.number().int().min(1).max(7)).min(1).default([1, 2, 3, 4, 5, 6, 7]),
              from: str().refine((v) => /^([01]?\d|2[0-3]):[0-5]\d$/.test(v), 'HH:MM, 00:00 to 23:59'),
              to: str().refine((v) => /^([01]?\d|2[0-3]):[0-5]\d$/.test(v), 'HH:MM, 00:00 to 23:59'),
            }),
          )
          .max(100)
          .default([]),
        /** A door that has heard no peer of a site area for this long decides it soft, and flags its decisions (s). */
        presence_stale_s: z.number().int().min(2).max(3600).default(30),
        /** Publish every decision and door event, signed, on `<base>/journal/<gateway>` for the site's collector. */
        publish_journal: z.boolean().default(true),
        /** How often this door re-publishes its convergence report (s; also after every change). */
        report_interval_s: z.number().int().min(5).max(3600).default(60),
        /** Accepted clock difference between a signer and this door (s). */
        clock_skew_s: z.number().int().min(0).max(600).default(30),
      })
      .default({ enabled: false, base_topic: 'doorgw-site', areas: [], keys: [], door_keys: [], permissions: SITE_PERMISSIONS, levels: SITE_LEVELS, level_schedule: [], presence_stale_s: 30, publish_journal: true, report_interval_s: 60, clock_skew_s: 30 }),
    /**
     * Anti-passback areas: doors of this gateway whose `in` and `out` readers track who is inside.
     * hard denies a passage back in (or out) without the other; soft lets it through and raises an alarm.
     */
    areas: z
      .record(
        id(),
        z.strictObject({
          doors: z.array(id()).min(1),
          mode: z.enum(['hard', 'soft']).default('hard'),
          /** Presence older than this is forgotten. */
          timeout_s: z.number().int().min(60).max(30 * 86_400).optional(),
          /** Every day at this local time (HH:MM) all presence is forgotten. */
          reset_at: str().refine((v) => /^([01]?\d|2[0-3]):[0-5]\d$/.test(v), 'HH:MM, 00:00 to 23:59').optional(),
          /**
           * Across the site (site.enabled): the area spans gateways; presence is shared, signed by
           * each door's key, and every door of it decides from its own copy.
           */
          site: z.boolean().default(false),
          /** The gateways of a site area (default: every gateway in site.door_keys). */
          peers: z.array(id()).optional(),
        }),
      )
      .default({}),
    /** Named groups of userids that door policies refer to. */
    groups: z.record(id(), z.array(str()).max(100_000)).default({}),
    /** Named holiday calendars: local dates `YYYY-MM-DD` or ranges `YYYY-MM-DD..YYYY-MM-DD`. */
    holidays: z.record(id(), z.array(str().refine((v) => !('error' in parseHoliday(v)), { message: 'give YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD (a date that exists, a range of at most a year)' }))).default({}),
    doors: z.array(door).min(1, 'at least one door is required'),
    mqtt: mqtt.default(mqtt.parse({})),
    /** The local web console and Prometheus metrics (off unless enabled). */
    web: z
      .strictObject({
        enabled: z.boolean().default(false),
        bind: str().default('127.0.0.1'),
        /** 0: any free port (tests). */
        port: z.number().int().min(0).max(65_535).default(8080),
        /** PEM files: serve HTTPS. */
        tls: z.strictObject({ cert: str(), key: str() }).optional(),
        /**
         * Serve plain HTTP beyond loopback (e.g. to a TLS reverse proxy on another host). Off: such a
         * bind is refused, since passwords and session cookies would cross the network in clear.
         */
        allow_insecure_remote: z.boolean().default(false),
        /** Secure cookies: default when TLS is on; set true behind a TLS-terminating reverse proxy. */
        cookie_secure: z.boolean().optional(),
        session_idle_min: z.number().int().min(1).max(24 * 60).default(30),
        session_max_h: z.number().int().min(1).max(24 * 7).default(12),
        login_max_failures: z.number().int().min(1).max(100).default(5),
        login_lockout_s: z.number().int().min(10).max(86_400).default(300),
        /**
         * Reverse proxies (IP addresses) whose X-Forwarded-For names the client. Set it behind a
         * proxy: otherwise every client has the proxy's address, and failed logins from one slow
         * down all of them. Never list an address that clients can reach directly.
         */
        trusted_proxies: z.array(str()).default([]),
        /** Live event streams at once (each a browser tab). */
        max_streams: z.number().int().min(1).max(200).default(20),
        /** Connections at once, in all and per client address (trusted proxies are not capped per client); more are closed and logged. */
        max_connections: z.number().int().min(8).max(10_000).default(256),
        max_connections_per_client: z.number().int().min(2).max(10_000).default(32),
        /** A connection with no traffic for this long is closed (live streams are pinged every 15 s). */
        idle_timeout_s: z.number().int().min(1).max(3600).default(30),
        metrics: z
          .strictObject({
            enabled: z.boolean().default(true),
            /** Bearer token Prometheus sends (`authorization.credentials`); prefer DOORGW_WEB__METRICS__TOKEN. */
            token: str().optional(),
            /** Answer /metrics without a token (loopback binds need no opt-in). */
            public: z.boolean().default(false),
          })
          .default({ enabled: true, public: false }),
      })
      .default({ enabled: false, bind: '127.0.0.1', port: 8080, allow_insecure_remote: false, session_idle_min: 30, session_max_h: 12, login_max_failures: 5, login_lockout_s: 300, trusted_proxies: [], max_streams: 20, max_connections: 256, max_connections_per_client: 32, idle_timeout_s: 30, metrics: { enabled: true, public: false } }),
    cloud: z
      .strictObject({
        provider: z.enum(['none', 'wecom', 'feishu']).default('none'),
        wecom: wecom.optional(),
        feishu: feishu.optional(),
        wecom_app: wecomApp.optional(),
      })
      .default({ provider: 'none' }),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.doors.forEach((d, i) => {
      if (seen.has(d.id)) ctx.addIssue({ code: 'custom', message: `duplicate door id '${d.id}'`, path: ['doors', i, 'id'] });
      seen.add(d.id);
    });
    if (c.cloud.provider === 'wecom' && !c.cloud.wecom) {
      ctx.addIssue({ code: 'custom', message: "provider 'wecom' needs a cloud.wecom section (at least {})", path: ['cloud', 'wecom'] });
    }
    c.io.linkage.forEach((r, i) =>
      r.do.forEach((a, j) => {
        if (!('site_level' in a)) return;
        const path = ['io', 'linkage', i, 'do', j, 'site_level'];
        const own = c.site.door_keys.find((k) => k.gateway === c.gateway_id);
        if (!c.site.enabled) ctx.addIssue({ code: 'custom', message: 'site_level needs the site (site.enabled)', path });
        else if (!c.site.levels.some((l) => l.name === a.site_level)) ctx.addIssue({ code: 'custom', message: `no level '${a.site_level}' in site.levels`, path });
        else if (!own?.may_raise.includes(a.site_level)) ctx.addIssue({ code: 'custom', message: `this gateway's entry in site.door_keys must allow it: may_raise: [${a.site_level}] (every door checks the same list)`, path });
        if (a.scope !== 'site' && !c.site.areas.includes(a.scope) && !(a.scope in c.areas)) ctx.addIssue({ code: 'custom', message: `scope '${a.scope}' is neither site nor an area`, path: [...path.slice(0, -1), 'scope'] });
      }),
    );
    c.site.level_schedule.forEach((e, i) => {
      if (!c.site.levels.some((l) => l.name === e.level)) ctx.addIssue({ code: 'custom', message: `no level '${e.level}' in site.levels (${c.site.levels.map((l) => l.name).join(', ')})`, path: ['site', 'level_schedule', i, 'level'] });
      if (e.scope !== 'site' && !c.site.areas.includes(e.scope) && !(e.scope in c.areas)) ctx.addIssue({ code: 'custom', message: `scope '${e.scope}' is neither site nor an area (site.areas or areas)`, path: ['site', 'level_schedule', i, 'scope'] });
      if (e.from === e.to) ctx.addIssue({ code: 'custom', message: 'from and to are the same time: an empty window', path: ['site', 'level_schedule', i, 'to'] });
    });
    if (c.cloud.provider === 'feishu' && !c.cloud.feishu) {
      ctx.addIssue({ code: 'custom', message: "provider 'feishu' needs a cloud.feishu section with app_id and app_secret", path: ['cloud', 'feishu'] });
    }
    const rod = c.cloud.wecom?.remote_open_door;
    if (rod !== undefined && !seen.has(rod)) ctx.addIssue({ code: 'custom', message: `no door '${rod}'`, path: ['cloud', 'wecom', 'remote_open_door'] });
    const w = c.web;
    const loopback = ['127.0.0.1', '::1', 'localhost'].includes(w.bind);
    if (w.enabled && !loopback && !w.tls && !w.allow_insecure_remote) {
      ctx.addIssue({ code: 'custom', message: `serving the console on ${w.bind} without TLS would send passwords and session cookies in clear: give web.tls (cert, key), bind 127.0.0.1 behind a reverse proxy, or set web.allow_insecure_remote: true`, path: ['web', 'bind'] });
    }
    if (w.enabled && w.metrics.enabled && !loopback && !w.metrics.token && !w.metrics.public) {
      ctx.addIssue({ code: 'custom', message: `metrics on ${w.bind} need web.metrics.token (Prometheus sends it as a bearer token), or web.metrics.public: true`, path: ['web', 'metrics', 'token'] });
    }
    c.doors.forEach((d, i) => {
      d.readers.forEach((r, j) => {
        // An MQTT reader without a broker connection would never be heard: say so, not nothing.
        if (r.type === 'mqtt' && !c.mqtt.enabled) ctx.addIssue({ code: 'custom', message: `reader '${r.id}' is an mqtt reader, but mqtt.enabled is false`, path: ['doors', i, 'readers', j, 'type'] });
      });
      const p = d.policy;
      p.holidays.forEach((h, j) => {
        if (!(h in c.holidays)) ctx.addIssue({ code: 'custom', message: `no holiday calendar '${h}' (holidays: ${Object.keys(c.holidays).join(', ') || 'none'})`, path: ['doors', i, 'policy', 'holidays', j] });
      });
      const groupRefs: [string, readonly string[]][] = [['holiday_exempt_groups', p.holiday_exempt_groups], ['lockdown_override_groups', p.lockdown_override_groups], ['extended_unlock', p.extended_unlock?.groups ?? []], ['passage', p.passage?.first_person_in?.groups ?? []]];
      for (const [key, names] of groupRefs) {
        names.forEach((g, j) => {
          const sub = key === 'extended_unlock' ? ['groups'] : key === 'passage' ? ['first_person_in', 'groups'] : [];
          if (!(g in c.groups)) ctx.addIssue({ code: 'custom', message: `no group '${g}' (groups: ${Object.keys(c.groups).join(', ') || 'none'})`, path: ['doors', i, 'policy', key, ...sub, j] });
        });
      }
    });
    const inInterlock = new Map<string, string>();
    for (const [name, members] of Object.entries(c.interlocks)) {
      members.forEach((m, j) => {
        if (!seen.has(m)) ctx.addIssue({ code: 'custom', message: `no door '${m}'`, path: ['interlocks', name, j] });
        const other = inInterlock.get(m);
        if (other !== undefined) ctx.addIssue({ code: 'custom', message: `door '${m}' is already in interlock '${other}'`, path: ['interlocks', name, j] });
        inInterlock.set(m, name);
      });
    }
    checkIo(c, seen, ctx);
    checkLinesOnce(c, ctx);
    const inArea = new Map<string, string>();
    for (const [name, a] of Object.entries(c.areas)) {
      if (a.site && !c.site.enabled) ctx.addIssue({ code: 'custom', message: 'a site area needs the site (site.enabled)', path: ['areas', name, 'site'] });
      if (a.site && c.site.door_keys.length === 0) ctx.addIssue({ code: 'custom', message: 'a site area believes presence signed by the doors\' keys: list them in site.door_keys', path: ['areas', name, 'site'] });
      a.doors.forEach((m, j) => {
        if (!seen.has(m)) ctx.addIssue({ code: 'custom', message: `no door '${m}'`, path: ['areas', name, 'doors', j] });
        const other = inArea.get(m);
        if (other !== undefined) ctx.addIssue({ code: 'custom', message: `door '${m}' is already in area '${other}'`, path: ['areas', name, 'doors', j] });
        inArea.set(m, name);
      });
    }
    const readers = new Set<string>();
    c.doors.forEach((d, i) =>
      d.readers.forEach((r, j) => {
        if (readers.has(r.id)) ctx.addIssue({ code: 'custom', message: `duplicate reader id '${r.id}'`, path: ['doors', i, 'readers', j, 'id'] });
        readers.add(r.id);
      }),
    );
    // OSDP readers sharing a bus: one speed, one poll cycle, one reader per address.
    const buses = new Map<string, { baud: number; poll: number; addresses: Map<number, string> }>();
    c.doors.forEach((d, i) =>
      d.readers.forEach((r, j) => {
        if (r.type !== 'osdp' || r.path === undefined) return;
        const at = ['doors', i, 'readers', j];
        const b = buses.get(r.path);
        if (!b) return void buses.set(r.path, { baud: r.baud_rate, poll: r.poll_interval_ms, addresses: new Map([[r.address, r.id]]) });
        if (b.baud !== r.baud_rate) ctx.addIssue({ code: 'custom', message: `readers on ${r.path} must share one baud_rate (${b.baud})`, path: [...at, 'baud_rate'] });
        if (b.poll !== r.poll_interval_ms) ctx.addIssue({ code: 'custom', message: `readers on ${r.path} must share one poll_interval_ms (${b.poll})`, path: [...at, 'poll_interval_ms'] });
        const other = b.addresses.get(r.address);
        if (other !== undefined) ctx.addIssue({ code: 'custom', message: `reader '${other}' already has address ${r.address} on ${r.path}`, path: [...at, 'address'] });
        b.addresses.set(r.address, r.id);
      }),
    );
  });

/**
 * Every GPIO line used once: a siren on a relay's pin, or a fire input on an exit button's, would
 * fail at start on the character device (busy) and silently share the line on sysfs.
 */
function checkLinesOnce(c: { doors: z.output<typeof door>[]; io: z.output<typeof io> }, ctx: z.RefinementCtx): void {
  const used = new Map<string, string>();
  const take = (pin: number | string | undefined, what: string, path: (string | number)[]): void => {
    if (pin === undefined) return;
    const key = typeof pin === 'number' ? `pin ${pin}` : `line ${pin}`;
    const other = used.get(key);
    if (other !== undefined) ctx.addIssue({ code: 'custom', message: `${key} is already ${other}`, path });
    else used.set(key, what);
  };
  c.doors.forEach((d, i) => {
    if (d.relay.driver === 'gpio') take(d.relay.pin ?? d.relay.line, `door '${d.id}' relay`, ['doors', i, 'relay']);
    for (const [name, inp] of Object.entries(d.inputs)) if (inp) take(inp.pin ?? inp.line, `door '${d.id}' ${name}`, ['doors', i, 'inputs', name]);
    d.readers.forEach((r, j) => {
      if (r.type !== 'wiegand') return;
      for (const k of ['d0', 'd1', 'led', 'beeper'] as const) take(r[k], `reader '${r.id}' ${k}`, ['doors', i, 'readers', j, k]);
    });
  });
  for (const [name, inp] of Object.entries(c.io.inputs)) take(inp.pin ?? inp.line, `input '${name}'`, ['io', 'inputs', name]);
  for (const [name, out] of Object.entries(c.io.outputs)) if (out.driver === 'gpio') take(out.pin ?? out.line, `output '${name}'`, ['io', 'outputs', name]);
}

/** Names an io section refers to exist; what a rule does could not trigger itself. */
function checkIo(c: { io: z.output<typeof io>; doors: z.output<typeof door>[]; groups: Record<string, string[]> }, doors: Set<string>, ctx: z.RefinementCtx): void {
  const { inputs, outputs, fire, linkage } = c.io;
  const inputNames = Object.keys(inputs).join(', ') || 'none';
  fire.forEach((f, i) => {
    if (!(f.input in inputs)) ctx.addIssue({ code: 'custom', message: `no input '${f.input}' (io.inputs: ${inputNames})`, path: ['io', 'fire', i, 'input'] });
    f.doors?.forEach((d, j) => {
      if (!doors.has(d)) ctx.addIssue({ code: 'custom', message: `no door '${d}'`, path: ['io', 'fire', i, 'doors', j] });
    });
  });
  const names = new Set<string>();
  linkage.forEach((r, i) => {
    if (names.has(r.name)) ctx.addIssue({ code: 'custom', message: `duplicate rule name '${r.name}'`, path: ['io', 'linkage', i, 'name'] });
    names.add(r.name);
    if ('input' in r.on && !(r.on.input in inputs)) ctx.addIssue({ code: 'custom', message: `no input '${r.on.input}' (io.inputs: ${inputNames})`, path: ['io', 'linkage', i, 'on', 'input'] });
    if ('event' in r.on && r.on.door !== undefined && r.on.door !== 'gateway' && !doors.has(r.on.door)) ctx.addIssue({ code: 'custom', message: `no door '${r.on.door}'`, path: ['io', 'linkage', i, 'on', 'door'] });
    r.do.forEach((a, j) => {
      const at = ['io', 'linkage', i, 'do', j];
      if ('output' in a && !(a.output in outputs)) ctx.addIssue({ code: 'custom', message: `no output '${a.output}' (io.outputs: ${Object.keys(outputs).join(', ') || 'none'})`, path: [...at, 'output'] });
      if ('while_active' in a && !('input' in r.on)) ctx.addIssue({ code: 'custom', message: 'while_active follows an input: the rule must be on an input', path: [...at, 'while_active'] });
      if ('deny_groups' in a) {
        if (!('input' in r.on)) ctx.addIssue({ code: 'custom', message: 'deny_groups holds while an input is active: the rule must be on an input', path: [...at, 'deny_groups'] });
        a.deny_groups.forEach((g, k) => {
          if (!(g in c.groups)) ctx.addIssue({ code: 'custom', message: `no group '${g}' (groups: ${Object.keys(c.groups).join(', ') || 'none'})`, path: [...at, 'deny_groups', k] });
        });
      }
      if ('mode' in a || 'deny_groups' in a) a.doors?.forEach((d, k) => {
        if (!doors.has(d)) ctx.addIssue({ code: 'custom', message: `no door '${d}'`, path: [...at, 'doors', k] });
      });
    });
  });
  c.doors.forEach((d, i) => {
    const l = d.lift;
    if (!l) return;
    const at = ['doors', i, 'lift'];
    const floors = new Set<string>();
    const used = new Map<string, string>();
    l.floors.forEach(({ floor, output }, j) => {
      if (floors.has(floor)) ctx.addIssue({ code: 'custom', message: `duplicate floor '${floor}'`, path: [...at, 'floors', j, 'floor'] });
      floors.add(floor);
      if (!(output in outputs)) ctx.addIssue({ code: 'custom', message: `no output '${output}' (io.outputs: ${Object.keys(outputs).join(', ') || 'none'})`, path: [...at, 'floors', j, 'output'] });
      const other = used.get(output);
      if (other !== undefined) ctx.addIssue({ code: 'custom', message: `output '${output}' already enables floor '${other}'`, path: [...at, 'floors', j, 'output'] });
      used.set(output, floor);
    });
    const floorRefs: [(string | number)[], readonly string[]][] = [[['everyone'], l.everyone], ...Object.entries(l.groups).map(([g, f]): [(string | number)[], string[]] => [['groups', g], f]), ...l.free_access.map((w, j): [(string | number)[], string[]] => [['free_access', j, 'floors'], w.floors]), ...(Array.isArray(l.fire) ? [[['fire'], l.fire] as [(string | number)[], string[]]] : [])];
    for (const [path, list] of floorRefs) list.forEach((f, k) => {
      if (!floors.has(f)) ctx.addIssue({ code: 'custom', message: `no floor '${f}' (floors: ${[...floors].join(', ')})`, path: [...at, ...path, k] });
    });
    for (const g of Object.keys(l.groups)) if (!(g in c.groups)) ctx.addIssue({ code: 'custom', message: `no group '${g}' (groups: ${Object.keys(c.groups).join(', ') || 'none'})`, path: [...at, 'groups', g] });
  });
  const loop = linkageLoop(linkage, c.doors.map((d) => d.id));
  if (loop) ctx.addIssue({ code: 'custom', message: `linkage rules would trigger themselves: ${loop.join(' → ')} (an action raises the event the next rule is on)`, path: ['io', 'linkage'] });
}

export type Config = z.output<typeof configSchema>;
export type DoorConfig = Config['doors'][number];
export type ReaderConfig = DoorConfig['readers'][number];
/** One kind's reader configuration. */
export type ReaderOf<K extends ReaderConfig['type']> = Extract<ReaderConfig, { type: K }>;
