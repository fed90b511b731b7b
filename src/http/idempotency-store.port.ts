/** The first answer to a command sent with an Idempotency-Key. */
export interface IdempotencyRecord {
  /** SHA-256 (hex) of method, path and canonical body: what the key was first used for. */
  fingerprint: string;
  /** HTTP status of the first answer. */
  status: number;
  /** The answer's JSON body (a problem+json document for a refusal). */
  body: unknown;
  contentType: string;
}

/** What a claim on a scope found. */
export type IdempotencyClaim =
  /** Nobody holds the scope: the caller now does and runs the command. */
  | { state: 'claimed'; claimId: string }
  /** The first answer is kept: the caller answers it without running anything. */
  | { state: 'answered'; record: IdempotencyRecord }
  /** Another request (in any instance) holds a live claim and has not answered yet. */
  | { state: 'in-progress'; fingerprint: string };

/**
 * Port: where Idempotency-Key scopes are claimed and first answers kept, shared
 * by every instance of the deployment (SQLite in DATA_DIR/state.sqlite, or
 * MongoDB when MONGODB_URL is set), so that a retry reaching another instance
 * is recognised.
 *
 * A scope goes through: free → claimed (for at most `claimTimeoutMs`) →
 * answered (for `retentionMs`, 24 h) → free again. A claim whose holder died
 * expires by itself; so does an answer. Times come from the adapter's clock
 * (epoch milliseconds).
 */
export interface IdempotencyStore {
  /**
   * Atomically, across instances: claims `scope` when it is free (never used,
   * or its claim or answer expired), else says what holds it. `fingerprint`
   * is kept with the claim so that a different request under a running key is
   * recognised as one.
   */
  claim(scope: string, fingerprint: string): Promise<IdempotencyClaim>;
  /**
   * Keeps `record` as the scope's answer for `retentionMs`, unless a live
   * answer is already kept (the first answer wins, whoever's claim it came
   * from), atomically across instances.
   *
   * Resolves to the record the scope now keeps: `record` itself, or the first
   * answer kept by another run of the same key (one whose claim was taken over
   * after this run's claim expired, see `claimTimeoutMs`). The caller answers
   * that record, not its own, so that every run and retry of a key gets the
   * same answer (API.md, Commands: a retry returns the first answer).
   */
  complete(scope: string, record: IdempotencyRecord): Promise<IdempotencyRecord>;
  /**
   * Frees a claim that produced no answer to keep (a validation error, an
   * unexpected failure), so that a retry runs at once. Does nothing when the
   * scope is answered or held under another claim id.
   */
  release(scope: string, claimId: string): Promise<void>;
  close(): Promise<void>;
}

export const IDEMPOTENCY_STORE = Symbol('IdempotencyStore');

/** How long scopes are held; both adapters take them, tests shorten nothing but the clock. */
export interface IdempotencyTimings {
  /** Answers are kept this long; a retry after that is a new command. */
  retentionMs: number;
  /**
   * A claim left by an instance that died mid-command expires after this long.
   * Longer than any command runs (the handler's retries take well under a
   * second); meanwhile a retry is told 409 `idempotency-request-in-progress`.
   */
  claimTimeoutMs: number;
  /** Epoch milliseconds. */
  now: () => number;
}

export const DEFAULT_IDEMPOTENCY_TIMINGS: IdempotencyTimings = {
  retentionMs: 24 * 60 * 60 * 1000,
  claimTimeoutMs: 30_000,
  now: () => Date.now(),
};
