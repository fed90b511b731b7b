import jwt from 'jsonwebtoken';
import { mkdtempSync, rmSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTransport } from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { start } from './child-process';
import { BenchOptions, Figure, figures, Section } from './report';

/**
 * A switch turned on for a firm of N case managers who have not enrolled:
 * N invitations. Measured, beside the ceiling measured in the same run:
 *   (a) ceiling: N messages sent straight to the same SMTP server by
 *       nodemailer from this process, 4 at a time over a pool of 4
 *       connections, 100 messages each (the mailer's settings);
 *   (b) the service: from the switch's answer to the policy having queued all
 *       N (its position in /health reaches the switch), and to the SMTP
 *       server having received all N.
 * The service is the built one (dist/src/main.js) in its own process on a
 * fresh DATA_DIR; the SMTP server (smtp-server) runs in this process and
 * accepts everything.
 *   npm run bench -- --only notifications   (BENCH_INVITEES=2000 to change the size)
 */

let INVITEES = Number(process.env.BENCH_INVITEES ?? 2000);
const JWT_SECRET = 'bench-secret-bench-secret-bench-secret-0123';
const MASTER_KEY = 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100';
const MAIN = join(__dirname, '..', 'src', 'main.js');
const FIRM = 'bench-firm';

const tokenFor = (role: string, extra: object = {}) =>
  jwt.sign({ sub: `bench-${role}`, role, ...extra }, JWT_SECRET, {
    algorithm: 'HS256',
    expiresIn: '1h',
  });
const host = tokenFor('host');
const operator = tokenFor('operator');
const admin = tokenFor('superuser', { firm: FIRM });

async function sink(): Promise<{ port: number; received: () => number; close: () => void }> {
  let received = 0;
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    onData(stream, _session, callback) {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        received++;
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.server.address() as AddressInfo).port,
    received: () => received,
    close: () => server.close(),
  };
}

async function call(url: string, method: string, path: string, token: string, body?: object) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, any>;
}

async function until(condition: () => Promise<boolean> | boolean): Promise<number> {
  for (;;) {
    if (await condition()) return performance.now();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function run({ quick }: BenchOptions): Promise<Figure[]> {
  if (quick) INVITEES = 100;
  const smtp = await sink();

  // (a) The ceiling: the same server, the same library, the same concurrency.
  const transport = createTransport({
    host: '127.0.0.1',
    port: smtp.port,
    secure: false,
    pool: true,
    maxConnections: 4,
    maxMessages: 100,
  });
  let next = 0;
  const ceilingStarted = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < INVITEES) {
        const n = next++;
        await transport.sendMail({
          from: 'MFA Service <mfa@localhost>',
          to: `cm-${n}@firm.example`,
          subject: 'ceiling',
          text: 'ceiling',
          html: '<p>ceiling</p>',
        });
      }
    }),
  );
  const ceilingMs = performance.now() - ceilingStarted;
  transport.close();
  const base = smtp.received();

  // (b) The service.
  const dataDir = mkdtempSync(join(tmpdir(), 'mfa-bench-mail-'));
  const service = await start([MAIN], {
    DATA_DIR: dataDir,
    PORT: '0',
    MFA_JWT_SECRET: JWT_SECRET,
    MFA_MASTER_KEY: MASTER_KEY,
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
  });
  try {
    const { url } = service;
    await call(url, 'POST', `/v1/firms/${FIRM}/mfa/subscription/request`, admin, {});
    await call(url, 'POST', `/v1/firms/${FIRM}/mfa/subscription/activate`, operator, {
      licenseCount: INVITEES,
      plan: 'standard',
    });
    let user = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (user < INVITEES) {
          const n = user++;
          await call(url, 'PUT', `/v1/firms/${FIRM}/users/cm-${n}`, host, {
            role: 'case-manager',
            name: `Case Manager ${n}`,
            email: `cm-${n}@firm.example`,
          });
        }
      }),
    );
    const health = () => call(url, 'GET', '/health', host);
    // Nothing is queued before the switch: MFA does not apply to anyone yet.
    await until(async () => (await health()).mail.pending === 0);

    const switchedAt = performance.now();
    const { position } = await call(
      url,
      'PUT',
      `/v1/firms/${FIRM}/mfa/enablement/case-managers`,
      admin,
      {
        enabled: true,
      },
    );
    const queuedAt = await until(async () => {
      const policy = (await health()).processManagers.find(
        (m: { name: string }) => m.name === 'notification-policy',
      );
      return BigInt(policy.position) >= BigInt(position);
    });
    const sentAt = await until(() => smtp.received() - base >= INVITEES);
    const recordedAt = await until(async () => (await health()).mail.pending === 0);

    const rate = (ms: number) => Math.round((INVITEES * 1000) / ms);
    const rows: Array<[string, number]> = [
      [`ceiling: ${INVITEES} messages straight to the SMTP server, pooled`, ceilingMs],
      [`switch on -> ${INVITEES} invitations queued (policy)`, queuedAt - switchedAt],
      [`switch on -> ${INVITEES} invitations received by the SMTP server`, sentAt - switchedAt],
      [`switch on -> ${INVITEES} sends recorded (EmailSent)`, recordedAt - switchedAt],
    ];
    console.log(`\nnotifications (${INVITEES} case managers invited at once)`);
    console.log(
      `${'measure'.padEnd(66)} ${'ms'.padStart(8)} ${'msg/s'.padStart(7)} ${'× ceiling'.padStart(10)}`,
    );
    for (const [name, ms] of rows) {
      console.log(
        `${name.padEnd(66)} ${Math.round(ms).toString().padStart(8)} ${rate(ms).toString().padStart(7)} ${(ceilingMs / ms).toFixed(2).padStart(10)}`,
      );
    }
    const figure = figures('notifications');
    return [
      figure(
        `ceiling: ${INVITEES} messages straight to the SMTP server, pooled`,
        rate(ceilingMs),
        'msg/s',
      ),
      figure(
        `switch on -> ${INVITEES} invitations received by the SMTP server`,
        rate(sentAt - switchedAt),
        'msg/s',
        {
          ceiling: rate(ceilingMs),
          note: `queued in ${Math.round(queuedAt - switchedAt)} ms, all recorded as sent in ${Math.round(recordedAt - switchedAt)} ms`,
        },
      ),
    ];
  } finally {
    service.child.kill('SIGKILL');
    smtp.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export const notificationsSection: Section = {
  name: 'notifications',
  description: 'invitations when MFA is switched on for a firm, beside nodemailer straight to SMTP',
  run,
};
