import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/*
 * One owner per process manager across instances (DESIGN §6, STYLE.md "One
 * owner per processor"): a lease in the read-model store, renewed while the
 * owner works, taken over by a standby once it expires or is released. See
 * docs/decisions/0014-process-manager-leases-and-fenced-sends.md.
 */

export interface LeaseSettings {
  /** This instance's id: unique per process (a restarted process is a new owner). */
  owner: string;
  /** How long a lease lasts without renewal, in ms: how long a crashed owner's work waits. */
  ttlMs: number;
  /** How often the owner renews its lease and a standby tries to take it, in ms. */
  renewEveryMs: number;
}

/** Defaults: a killed owner's work resumes within 10 to 12 s; an owner tolerates two failed renewals. */
export const DEFAULT_LEASE_TTL_MS = 10_000;
export const DEFAULT_LEASE_RENEW_MS = 2_000;

/** `host/pid/random`: readable in logs, and never the same for two processes. */
export function newOwnerId(): string {
  return `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
}

/**
 * The part of the lease an owner keeps in reserve: it stops side effects once
 * its lease may have less than this left (half the TTL), so they have ended,
 * or been cut off, well before a standby can take the lease over.
 */
export const safetyMarginMs = (settings: LeaseSettings) => settings.ttlMs / 2;

/** The lease was lost (or may lapse): the side effect must not happen here. */
export class LeaseLostError extends Error {
  constructor(name: string) {
    super(`This instance no longer holds the lease of ${name}`);
    this.name = 'LeaseLostError';
  }
}

/**
 * What a process manager sees of its runner's lease, to fence side effects
 * that must not happen twice (the mailer's hand-over to the mail server).
 */
export interface LeaseFence {
  /**
   * Aborted when this instance stops holding the lease, or may stop holding it
   * before the next renewal is confirmed: pass it to the work it cuts short
   * (nodemailer aborts a send on it).
   */
  readonly signal: AbortSignal;
  /**
   * Resolves when this instance holds the lease for at least the safety margin
   * more, as the store says now; rejects with LeaseLostError otherwise.
   */
  confirm(): Promise<void>;
}
