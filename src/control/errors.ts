/** Errors the CLI tells apart (kept light: the CLI loads them before anything else). */

/** The caller asked for something wrong: exit 2 with the message. */
export class UsageError extends Error {}

/** A gateway answered a control request with an error. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly usage: boolean,
  ) {
    super(message);
  }
}
