import { AddressInfo } from 'node:net';
import { ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer, SMTPServerAddress } from 'smtp-server';

/*
 * A real SMTP server inside the test process (the `smtp-server` package), its
 * messages parsed by a real MIME parser (`mailparser`). Tests can refuse
 * recipients, slow the acceptance down, or stop and restart it on the same
 * port (a mail server that is down for a while).
 */

export interface ReceivedMail {
  messageId: string;
  /** The envelope recipient (RCPT TO). */
  to: string;
  notification: string;
  subject: string;
  text: string;
  html: string;
  from: string;
  parsed: ParsedMail;
  raw: Buffer;
  /** When the server had the whole message (its final dot), before parsing and acceptance; ms since epoch. */
  dataEndedAt: number;
}

export interface SmtpSinkOptions {
  /**
   * A recipient this answers true for is refused with 451 (a temporary failure)
   * at RCPT TO; a number is the reply code to refuse with (550: unknown mailbox, for good).
   */
  refuse?: (address: string) => boolean | number;
  /** Called before the server answers the message data: an acceptance that takes time. */
  beforeAccept?: (mail: ReceivedMail) => Promise<void> | void;
  /** Require AUTH PLAIN/LOGIN with these credentials. */
  credentials?: { user: string; pass: string };
}

export class SmtpSink {
  readonly received: ReceivedMail[] = [];
  /** RCPT TO addresses refused so far. */
  readonly refused: string[] = [];
  private server: SMTPServer | undefined;
  private waiters: Array<{ count: number; resolve: () => void }> = [];
  port = 0;

  constructor(public options: SmtpSinkOptions = {}) {}

  get url(): string {
    const auth = this.options.credentials
      ? `${encodeURIComponent(this.options.credentials.user)}:${encodeURIComponent(this.options.credentials.pass)}@`
      : '';
    return `smtp://${auth}127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const { credentials } = this.options;
    const server = new SMTPServer({
      secure: false,
      disabledCommands: credentials ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
      authOptional: !credentials,
      allowInsecureAuth: true,
      // No DNS lookup of the client for every connection.
      disableReverseLookup: true,
      logger: false,
      onAuth: (auth, _session, callback) => {
        if (
          credentials &&
          auth.username === credentials.user &&
          auth.password === credentials.pass
        ) {
          callback(null, { user: auth.username });
        } else {
          callback(new Error('Invalid username or password'));
        }
      },
      onRcptTo: (address: SMTPServerAddress, _session, callback) => {
        const refusal = this.options.refuse?.(address.address);
        if (refusal) {
          this.refused.push(address.address);
          const code = refusal === true ? 451 : refusal;
          const error = new Error(
            code >= 500
              ? `5.1.1 <${address.address}>: Recipient address rejected: User unknown`
              : `Mailbox ${address.address} temporarily unavailable`,
          ) as Error & { responseCode: number };
          error.responseCode = code;
          callback(error);
          return;
        }
        callback();
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const dataEndedAt = Date.now();
          const raw = Buffer.concat(chunks);
          void simpleParser(raw)
            .then(async (parsed) => {
              const to = session.envelope.rcptTo.map((r) => r.address);
              const mails = to.map((address) => ({
                messageId: parsed.messageId ?? '',
                to: address,
                notification: String(parsed.headers.get('x-mfa-notification') ?? ''),
                subject: parsed.subject ?? '',
                text: parsed.text ?? '',
                html: typeof parsed.html === 'string' ? parsed.html : '',
                from: parsed.from?.text ?? '',
                parsed,
                raw,
                dataEndedAt,
              }));
              for (const mail of mails) await this.options.beforeAccept?.(mail);
              this.received.push(...mails);
              this.wake();
              callback();
            })
            .catch((error: Error) => callback(error));
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    server.on('error', () => undefined);
    this.port = (server.server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening (the port is kept for a restart); open connections are cut. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resolves once `count` messages have arrived; rejects after `timeoutMs`. */
  waitForCount(count: number, timeoutMs = 20_000): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `Expected ${count} emails within ${timeoutMs} ms, got ${this.received.length}: ` +
              this.received.map((m) => `${m.notification} -> ${m.to}`).join(', '),
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ count, resolve: done });
    });
  }

  private wake(): void {
    this.waiters = this.waiters.filter((waiter) => {
      if (this.received.length < waiter.count) return true;
      waiter.resolve();
      return false;
    });
  }
}

/** "notification -> recipient" lines, sorted: the shape the tests compare. */
export const summary = (mails: readonly ReceivedMail[]) =>
  mails.map((m) => `${m.notification} -> ${m.to}`).sort();
