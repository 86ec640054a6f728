/** Errors the CLI tells apart (kept light: the CLI loads them before anything else). */

/**
 * What a refused request was refused for, the same over the control socket and MQTT:
 * invalid (bad parameters), not_found, conflict (the change contradicts what is there),
 * unavailable (needs the running gateway, or a cloud), forbidden, internal (a fault of ours).
 */
export type ErrorCode = 'invalid' | 'not_found' | 'conflict' | 'unavailable' | 'forbidden' | 'internal';

/** The caller asked for something wrong: exit 2 with the message. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly code: ErrorCode = 'invalid',
  ) {
    super(message);
  }
}

/** A gateway answered a control request with an error. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly usage: boolean,
    readonly code: ErrorCode = usage ? 'invalid' : 'internal',
  ) {
    super(message);
  }
}
