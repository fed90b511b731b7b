import { connect, Socket } from 'node:net';
import type { RunningService } from './harness';

/*
 * HTTP/1.1 over a bare TCP socket, for what fetch() will not send: stalled or
 * trickled requests, malformed request lines, oversized headers, and paths
 * with dot segments (fetch removes `..` and `%2e%2e` before sending).
 */

export function portOf(service: RunningService): number {
  return (service.app.getHttpServer().address() as { port: number }).port;
}

/** What came back on a socket and when the server closed it (ms after connecting). */
export interface SocketOutcome {
  data: string;
  closedAfterMs: number;
  /** Date.now() when it closed. */
  closedAt: number;
}

/** A connection kept open by the test: what it received, and a promise of its end. */
export interface HeldConnection {
  socket: Socket;
  /** Resolves when the server (or the test) closes it. */
  closed: Promise<SocketOutcome>;
}

/** Opens a connection, writes `text`, and leaves it open: the server decides when it ends. */
export function hold(port: number, text: string): Promise<HeldConnection> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const closed = new Promise<SocketOutcome>((done) => {
      socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
      socket.on('close', () =>
        done({ data, closedAfterMs: Date.now() - started, closedAt: Date.now() }),
      );
    });
    // A reset by the server is a close too; the outcome says what was received.
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      if (text) socket.write(text);
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

/** Sends `text` (a whole request, or bytes that are not one) and waits for the server to close. */
export async function exchange(
  port: number,
  text: string | Buffer,
  waitMs = 5000,
): Promise<SocketOutcome> {
  const connection = await hold(port, '');
  connection.socket.write(text);
  const timer = setTimeout(() => connection.socket.destroy(), waitMs);
  const outcome = await connection.closed;
  clearTimeout(timer);
  return outcome;
}

/** Sends one request with `Connection: close` and parses the answer. */
export async function rawRequest(
  port: number,
  requestLine: string,
  headers: Record<string, string> = {},
  body: string | Buffer = '',
): Promise<RawResponse> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const head = Object.entries({
    Host: '127.0.0.1',
    Connection: 'close',
    ...(bytes.length > 0 ? { 'Content-Length': String(bytes.length) } : {}),
    ...headers,
  })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const outcome = await exchange(
    port,
    Buffer.concat([Buffer.from(`${requestLine}\r\n${head}\r\n`), bytes]),
  );
  return parseResponse(outcome.data);
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses one HTTP/1.1 answer (not chunked) from what a socket received. */
export function parseResponse(data: string): RawResponse {
  const split = data.indexOf('\r\n\r\n');
  if (!/^HTTP\/1\.1 \d{3}/.test(data) || split === -1) {
    throw new Error(`Not an HTTP answer: ${JSON.stringify(data.slice(0, 200))}`);
  }
  const [statusLine, ...headerLines] = data.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: data.slice(split + 4) };
}
