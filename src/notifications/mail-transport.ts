import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { createTransport, Transporter } from 'nodemailer';
import type { RenderedEmail } from './email-content';
import type { MailTransportKind } from './notifications.decider';

/**
 * Where emails go: an SMTP server when SMTP_URL is set, otherwise one `.eml`
 * file per message in DATA_DIR/outbox (the default, for development and for
 * hosts that pick the files up). Both are nodemailer; `send` resolves once the
 * server accepted the message or the file is durably in place.
 */
export interface MailTransport {
  readonly kind: MailTransportKind;
  /** Where messages go, without credentials: for /health and logs. */
  readonly target: string;
  /**
   * Resolves with the server's answer, or the outbox file's name. `signal`
   * aborts the send (an SMTP conversation in progress is cut off); an aborted
   * send may still have reached the server if its end was already sent.
   */
  send(email: RenderedEmail, signal?: AbortSignal): Promise<string>;
  close(): void;
}

/**
 * The mail server refused this message for good: a 5xx reply to its
 * recipient (RCPT TO) or to its content (DATA), RFC 5321 §4.2.1 ("permanent
 * negative completion": the same request will fail again). Sending it again
 * is pointless until someone changes something (the address, the server's
 * rules). 503 "bad sequence of commands" is not one: it says the conversation
 * went wrong, not the message. A 5xx to AUTH or MAIL FROM is not one either:
 * it concerns the sender's account or address, so every message would fail
 * alike, and they are retried (and shown in /health) until the setup is fixed.
 */
export class PermanentRefusal extends Error {
  constructor(
    readonly responseCode: number,
    /** The server's reply text (it may name the address): for the log and operators only. */
    readonly response: string,
  ) {
    super(`${responseCode} ${response}`);
    this.name = 'PermanentRefusal';
  }
}

/** The PermanentRefusal a nodemailer error stands for, if it is one. */
export function permanentRefusalOf(error: unknown): PermanentRefusal | undefined {
  if (!(error instanceof Error)) return undefined;
  const { responseCode, response, command } = error as Error & {
    responseCode?: number;
    response?: string;
    command?: string;
  };
  if (typeof responseCode !== 'number' || responseCode < 500 || responseCode > 599)
    return undefined;
  if (responseCode === 503 || (command !== 'RCPT TO' && command !== 'DATA')) return undefined;
  const text = (response ?? error.message).replace(/^\d{3}[ -]/, '').trim();
  return new PermanentRefusal(responseCode, text.slice(0, 500));
}

/** SMTP connections kept open at once; the mailer hands over as many messages at a time. */
export const MAX_CONNECTIONS = 4;

export function openMailTransport(smtpUrl: string | null, dataDir: string): MailTransport {
  return smtpUrl ? new SmtpTransport(smtpUrl) : new OutboxTransport(join(dataDir, 'outbox'));
}

class SmtpTransport implements MailTransport {
  readonly kind = 'smtp';
  readonly target: string;
  private readonly transporter: Transporter;

  constructor(private readonly url: string) {
    const parsed = new URL(url);
    this.target = `${parsed.protocol}//${parsed.host}`;
    const secure = parsed.protocol === 'smtps:';
    this.transporter = createTransport({
      host: parsed.hostname,
      port: parsed.port ? Number(parsed.port) : secure ? 465 : 25,
      secure,
      auth: parsed.username
        ? {
            user: decodeURIComponent(parsed.username),
            pass: decodeURIComponent(parsed.password),
          }
        : undefined,
      // Connections are reused: setting one up (TCP, TLS, the greeting, which servers
      // often delay on purpose) costs far more than a message (bench/notifications.bench.ts).
      pool: true,
      maxConnections: MAX_CONNECTIONS,
      maxMessages: 100,
      // A server that is down or stalls fails the attempt quickly; the mailer retries it.
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    });
  }

  async send(email: RenderedEmail, signal?: AbortSignal): Promise<string> {
    try {
      const info = (await this.transporter.sendMail({ ...email, signal })) as {
        response?: string;
      };
      return String(info.response ?? '250 accepted');
    } catch (error) {
      const refusal = permanentRefusalOf(error);
      if (refusal) {
        throw new PermanentRefusal(
          refusal.responseCode,
          withoutCredentials(refusal.response, this.url),
        );
      }
      throw new Error(withoutCredentials(describe(error), this.url));
    }
  }

  close(): void {
    this.transporter.close();
  }
}

class OutboxTransport implements MailTransport {
  readonly kind = 'outbox';
  private readonly builder = createTransport({
    streamTransport: true,
    buffer: true,
    newline: 'windows',
  });

  constructor(readonly target: string) {}

  /** Written under a temporary name, flushed, then renamed: the outbox never holds half a message. */
  async send(email: RenderedEmail, signal?: AbortSignal): Promise<string> {
    signal?.throwIfAborted();
    const info = (await this.builder.sendMail(email)) as { message: Buffer };
    await mkdir(this.target, { recursive: true });
    // The file is named after the Message-ID: a message sent again replaces itself.
    const name = `${email.messageId.replace(/[<>]/g, '').replace(/[^A-Za-z0-9.@-]/g, '_')}.eml`;
    const file = join(this.target, name);
    const temporary = `${file}.tmp`;
    const handle = await open(temporary, 'w', 0o640);
    try {
      await handle.writeFile(info.message);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // The rename is the hand-over: not after the lease ended.
    signal?.throwIfAborted();
    await rename(temporary, file);
    return name;
  }

  close(): void {
    this.builder.close();
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { code, responseCode, response } = error as Error & {
    code?: string;
    responseCode?: number;
    response?: string;
  };
  const detail = response ?? error.message;
  return [code, responseCode, detail].filter((part) => part !== undefined && part !== '').join(' ');
}

/** SMTP_URL may carry a password: it never reaches /health or a log line. */
function withoutCredentials(message: string, url: string): string {
  const { password } = new URL(url);
  let clean = message;
  for (const secret of new Set([password, decodeURIComponent(password)])) {
    if (secret) clean = clean.split(secret).join('***');
  }
  return clean;
}
