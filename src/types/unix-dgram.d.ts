/** unix-dgram ships no types; the part doorgw uses. */
declare module 'unix-dgram' {
  interface UnixDgramSocket {
    send(buf: Buffer, offset: number, length: number, path: string, cb?: (err?: Error) => void): void;
    bind(path: string): void;
    close(): void;
    on(ev: 'error', cb: (e: Error) => void): void;
  }
  export function createSocket(type: 'unix_dgram', onMessage?: (msg: Buffer) => void): UnixDgramSocket;
}
