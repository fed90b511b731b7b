import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { AppConfig } from '../config/config';
import { APP_CONFIG } from '../config/config.module';
import type { RecordedEvent } from '../event-store/event-store.port';
import type { ProcessManager } from '../projection-engine/process-manager';
import { deterministicId } from '../shared/deterministic-id';
import { streams } from '../shared/ids';
import { renderEmail } from './email-content';
import type { MailTransport } from './mail-transport';
import { notificationsDecider, QueuedEmail } from './notifications.decider';

/** Messages handed to the transport at once. */
const CONCURRENCY = 4;
const FIRST_RETRY_MS = 1_000;

export const MAIL_TRANSPORT = Symbol('MailTransport');

interface Delivery {
  firmId: string;
  email: QueuedEmail & { queuedAt: string };
  /** Log position of its EmailQueued: the checkpoint stays below it until it is sent. */
  position: bigint;
  correlationId: string;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  /** The server's answer once it took the message, while the record of it is still to be made. */
  accepted: string | null;
  inFlight: boolean;
}

export interface MailerHealth {
  transport: string;
  target: string;
  /** Queued and not yet recorded as sent. */
  pending: number;
  /** Of those, the ones whose last attempt failed. */
  retrying: number;
  sentSinceStart: number;
  oldestQueuedAt: string | null;
  lastError: {
    messageId: string;
    firmId: string;
    error: string;
    attempts: number;
    nextAttemptAt: string;
  } | null;
}

/**
 * Sends what the notification policy queued, and records each message the
 * server (or the outbox) took as EmailSent in the firm's notifications stream.
 *
 * Guarantees (docs/notifications.md):
 * - At least once. The checkpoint never passes a queued message that is not
 *   recorded as sent (`checkpointLimit`), so a restart reads it again; before
 *   sending, the stream is asked whether it was sent meanwhile.
 * - A duplicate only if the process dies between the server's acceptance and
 *   the record, and then with the same Message-ID (fixed at queuing).
 * - Failures (server down, refusal) are retried per message with exponential
 *   back-off, capped by MAIL_RETRY_MAX_SECONDS. Sending never holds up the log:
 *   `handle` only takes note, so other firms' emails and the other consumers
 *   go on.
 */
@Injectable()
export class Mailer implements ProcessManager, OnModuleDestroy {
  readonly name = 'notification-mailer';
  readonly handles = ['EmailQueued', 'EmailSent'];
  private readonly logger = new Logger('Mailer');
  /** By message id, in queuing order. */
  private readonly deliveries = new Map<string, Delivery>();
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private pumping = false;
  private stopped = false;
  private sent = 0;
  private lastFailure: Delivery | undefined;

  constructor(
    private readonly commands: CommandHandler,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(MAIL_TRANSPORT) private readonly transport: MailTransport,
  ) {}

  handle(event: RecordedEvent): Promise<void> {
    const { firmId } = event.metadata;
    if (event.type === 'EmailQueued') {
      const email = event.data as unknown as QueuedEmail & { queuedAt: string };
      if (!this.deliveries.has(email.messageId)) {
        this.deliveries.set(email.messageId, {
          firmId,
          email,
          position: event.position,
          correlationId: event.metadata.correlationId,
          attempts: 0,
          nextAttemptAt: 0,
          lastError: null,
          accepted: null,
          inFlight: false,
        });
        this.schedule(0);
      }
    } else if (event.type === 'EmailSent') {
      const messageId = String(event.data.messageId);
      const delivery = this.deliveries.get(messageId);
      // One in flight finds out by itself (it asks the stream first, or records a no-op).
      if (delivery && !delivery.inFlight) this.deliveries.delete(messageId);
    }
    return Promise.resolve();
  }

  checkpointLimit(): bigint | undefined {
    let lowest: bigint | undefined;
    for (const delivery of this.deliveries.values()) {
      if (lowest === undefined || delivery.position < lowest) lowest = delivery.position;
    }
    return lowest === undefined ? undefined : lowest - 1n;
  }

  health(): MailerHealth {
    let retrying = 0;
    let oldest: string | null = null;
    for (const delivery of this.deliveries.values()) {
      if (delivery.attempts > 0) retrying++;
      if (oldest === null || delivery.email.queuedAt < oldest) oldest = delivery.email.queuedAt;
    }
    const failure = this.lastFailure;
    return {
      transport: this.transport.kind,
      target: this.transport.target,
      pending: this.deliveries.size,
      retrying,
      sentSinceStart: this.sent,
      oldestQueuedAt: oldest,
      lastError:
        failure && this.deliveries.get(failure.email.messageId) === failure && failure.lastError
          ? {
              messageId: failure.email.messageId,
              firmId: failure.firmId,
              error: failure.lastError,
              attempts: failure.attempts,
              nextAttemptAt: new Date(failure.nextAttemptAt).toISOString(),
            }
          : null,
    };
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.allSettled([...this.inFlight]);
    this.transport.close();
  }

  /** Runs the pump at `at` (ms since epoch) unless it is due to run sooner. */
  private schedule(at: number): void {
    if (this.stopped || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.pump(), Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  /** Starts the due deliveries, up to CONCURRENCY at a time, and sets the timer for the next. */
  private pump(): void {
    this.timerAt = Infinity;
    if (this.stopped || this.pumping) return;
    this.pumping = true;
    try {
      const now = Date.now();
      let next = Infinity;
      for (const delivery of this.deliveries.values()) {
        if (delivery.inFlight) continue;
        if (delivery.nextAttemptAt > now) {
          next = Math.min(next, delivery.nextAttemptAt);
          continue;
        }
        if (this.inFlight.size >= CONCURRENCY) break;
        const work = this.deliver(delivery).finally(() => {
          this.inFlight.delete(work);
          this.schedule(0);
        });
        this.inFlight.add(work);
      }
      if (next !== Infinity) this.schedule(next);
    } finally {
      this.pumping = false;
    }
  }

  private async deliver(delivery: Delivery): Promise<void> {
    delivery.inFlight = true;
    const { firmId, email } = delivery;
    const stream = streams.notifications(firmId);
    try {
      if (delivery.accepted === null) {
        // Read again after a restart: it may have been sent before the process stopped.
        const { state } = await this.commands.load(stream, notificationsDecider);
        if (!state.pending.has(email.messageId)) {
          this.deliveries.delete(email.messageId);
          return;
        }
        delivery.accepted = await this.transport.send(
          renderEmail(firmId, email, this.config.mailFrom),
        );
      }
      await this.commands.handle(
        stream,
        notificationsDecider,
        {
          type: 'RecordEmailSent',
          messageId: email.messageId,
          transport: this.transport.kind,
          response: delivery.accepted.slice(0, 200),
        },
        this.envelope(delivery),
      );
      this.deliveries.delete(email.messageId);
      this.sent++;
      if (delivery.attempts > 0) {
        this.logger.log(
          `${email.notification} ${email.messageId} of firm ${firmId} sent after ${delivery.attempts} failed attempts`,
        );
      }
    } catch (error) {
      delivery.attempts++;
      delivery.lastError = error instanceof Error ? error.message : String(error);
      const backoff = Math.min(
        this.config.mailRetryMaxMs,
        FIRST_RETRY_MS * 2 ** Math.min(delivery.attempts - 1, 20),
      );
      // Jitter, so that many messages failing together do not retry together.
      delivery.nextAttemptAt = Date.now() + Math.round(backoff * (0.8 + 0.4 * Math.random()));
      this.lastFailure = delivery;
      this.logger.warn(
        `${email.notification} ${email.messageId} of firm ${firmId}: attempt ${delivery.attempts} failed ` +
          `(${delivery.lastError}); next in ${Math.round((delivery.nextAttemptAt - Date.now()) / 1000)} s`,
      );
    } finally {
      delivery.inFlight = false;
    }
  }

  private envelope(delivery: Delivery): CommandEnvelope {
    return {
      commandId: deterministicId(this.name, delivery.email.messageId),
      firmId: delivery.firmId,
      actor: { id: this.name, role: 'system' },
      correlationId: delivery.correlationId,
    };
  }
}
