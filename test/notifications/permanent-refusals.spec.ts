import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { permanentRefusalOf } from '../../src/notifications/mail-transport';
import { Mailer } from '../../src/notifications/mailer';
import { READ_MODEL_STORE, ReadModelStore } from '../../src/read-model/read-model-store.port';
import { Api, RunningService, startService, token } from '../support/harness';
import { activeFirm, expectOk, host, operator, registerUser, superuserOf } from '../support/mfa';
import { mailSettled } from '../support/notifications';
import { SmtpSink, summary } from '../support/smtp-sink';

/*
 * DESIGN §5: "A permanent refusal is recorded as failed, not retried for
 * ever." Through the running service and a real SMTP server that answers 550
 * (unknown mailbox) for some recipients: the refusal is an EmailFailed event,
 * the other emails go out, the mailer's checkpoint moves on, nothing is tried
 * again by itself; operators see it and, once the host has fixed the address,
 * queue it again, and it arrives once.
 */

const FIRM = 'firm-550';
const failedPath = (firmId: string) => `/v1/firms/${firmId}/mfa/notifications/failed`;
const retryPath = (firmId: string, messageId: string) =>
  `/v1/firms/${firmId}/mfa/notifications/${messageId}/retry`;

describe('A mail server refusing a recipient for good (550)', () => {
  const sink = new SmtpSink({
    refuse: (address) => (address.endsWith('@old.example') ? 550 : false),
  });
  let service: RunningService;
  let api: Api;

  beforeAll(async () => {
    await sink.start();
    service = await startService({ env: { SMTP_URL: sink.url, MAIL_RETRY_MAX_SECONDS: '1' } });
    api = service.api;
  });

  afterAll(async () => {
    await service?.stop();
    await sink.stop();
  });

  const firmEvents = async (type: string) =>
    (await service.events()).filter((e) => e.type === type && e.metadata.firmId === FIRM);
  const messageIdOf = (queued: RecordedEvent[], userId: string) =>
    String(
      queued.find((e) => (e.data.recipient as { userId: string }).userId === userId)?.data
        .messageId,
    );

  it('is recorded as failed and not retried; the others go out and the checkpoint moves on', async () => {
    // Case managers are invited: two of them have an address the server refuses.
    await activeFirm(api, FIRM, 10);
    await registerUser(api, FIRM, 'moved', { email: 'moved@old.example' });
    await registerUser(api, FIRM, 'left', { email: 'left@old.example' });
    await registerUser(api, FIRM, 'cm-1');
    await registerUser(api, FIRM, 'cm-2');
    await mailSettled(service);

    const queued = await firmEvents('EmailQueued');
    expect(queued).toHaveLength(4);
    expect(summary(sink.received)).toEqual([
      'enrollment-invitation -> cm-1@firm.example',
      'enrollment-invitation -> cm-2@firm.example',
    ]);
    const failed = await firmEvents('EmailFailed');
    const byMessageId = (a: { messageId?: unknown }, b: { messageId?: unknown }) =>
      String(a.messageId) < String(b.messageId) ? -1 : 1;
    expect(failed.map((e) => e.data).sort(byMessageId)).toEqual(
      ['moved', 'left']
        .map((userId) => ({
          messageId: messageIdOf(queued, userId),
          notification: 'enrollment-invitation',
          recipient: {
            userId,
            name: `User ${userId}`,
            email: `${userId}@old.example`,
            role: 'case-manager',
          },
          transport: 'smtp',
          responseCode: 550,
          response: `5.1.1 <${userId}@old.example>: Recipient address rejected: User unknown`,
          attempts: 1,
          failedAt: expect.any(String),
        }))
        .sort(byMessageId),
    );
    expect((await firmEvents('EmailSent')).map((e) => e.data.userId).sort()).toEqual([
      'cm-1',
      'cm-2',
    ]);

    // Nothing waits for a retry: no message pending, none retrying, the checkpoint past them.
    // The public /health counts them and names no one; the details are for operators.
    const health = await api.get('/health');
    expect(health.body.status).toBe('ok');
    expect(health.body.mail).toEqual({ pending: 0, retrying: 0, failed: 2 });
    expect(health.text).not.toMatch(/old\.example|moved|left|firm-550/);
    expect((await service.app.get(Mailer).health()).lastError).toBeNull();
    const details = (await service.app.get(Mailer).health()).failedEmails;
    expect(details.map((e) => e.messageId).sort()).toEqual(
      failed.map((e) => e.data.messageId).sort(),
    );
    expect(details[0]).toMatchObject({ firmId: FIRM, responseCode: 550 });
    const store = service.app.get<symbol, ReadModelStore>(READ_MODEL_STORE);
    const lastFailure = failed.map((e) => e.position).reduce((a, b) => (a > b ? a : b));
    expect(await store.processCheckpoint('notification-mailer')).toBeGreaterThanOrEqual(
      lastFailure,
    );
    expect(sink.refused.sort()).toEqual(['left@old.example', 'moved@old.example']);

    // Operators see them, oldest first, a page at a time; nobody else does.
    const first = await api.get(`${failedPath(FIRM)}?limit=1&minPosition=${lastFailure}`, operator);
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(1);
    const second = await api.get(
      `${failedPath(FIRM)}?limit=1&cursor=${first.body.nextCursor}`,
      operator,
    );
    expect(second.body).toEqual({ items: [expect.any(Object)], nextCursor: null });
    const listed = [...first.body.items, ...second.body.items];
    expect(listed.map((item) => item.messageId).sort()).toEqual(
      failed.map((e) => e.data.messageId).sort(),
    );
    for (const item of listed) {
      expect(item).toEqual(
        failed.map((e) => e.data).find((data) => data.messageId === item.messageId),
      );
    }
    expect((await api.get(failedPath(FIRM), superuserOf(FIRM))).status).toBe(403);
    expect((await api.get(failedPath('another-firm'), operator)).body).toEqual({
      items: [],
      nextCursor: null,
    });
    expect((await api.get(`${failedPath(FIRM)}?cursor=bogus`, operator)).status).toBe(400);
  });

  it('an operator queues it again once the host fixed the address: it arrives once, to the new address', async () => {
    const queued = await firmEvents('EmailQueued');
    const moved = messageIdOf(queued, 'moved');
    const before = sink.received.length;
    expectOk(
      await api.put(`/v1/firms/${FIRM}/users/moved`, host, {
        role: 'case-manager',
        name: 'User moved',
        email: 'moved@new.example',
      }),
    );
    expect((await api.post(retryPath(FIRM, moved), superuserOf(FIRM), {})).status).toBe(403);

    const retried = await api.post(retryPath(FIRM, moved), operator, {});
    expect(retried.status).toBe(200);
    const again = await firmEvents('EmailQueued');
    const requeued = again.find((e) => e.data.retryOf === moved)!;
    expect(retried.body).toEqual({
      position: String(requeued.position),
      messageId: requeued.data.messageId,
      retryOf: moved,
      recipient: {
        userId: 'moved',
        name: 'User moved',
        email: 'moved@new.example',
        role: 'case-manager',
      },
    });
    expect(requeued.data.messageId).not.toBe(moved);
    expect(requeued.metadata.actor).toEqual({ id: 'ops-1', role: 'operator' });
    await mailSettled(service);

    const arrived = sink.received.slice(before);
    expect(arrived.map((m) => `${m.messageId} ${m.notification} -> ${m.to}`)).toEqual([
      `<${String(requeued.data.messageId)}@localhost> enrollment-invitation -> moved@new.example`,
    ]);
    expect(
      (await firmEvents('EmailSent')).filter((e) => e.data.messageId === requeued.data.messageId),
    ).toHaveLength(1);

    // Once is once: the same retry again is refused, and so is one of an email never queued.
    const twice = await api.post(retryPath(FIRM, moved), operator, {});
    expect(twice.status).toBe(409);
    expect(twice.body.type).toMatch(/email-not-failed$/);
    const unknown = await api.post(retryPath(FIRM, 'never-queued'), operator, {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.type).toMatch(/email-not-found$/);
    const sent = messageIdOf(queued, 'cm-1');
    expect((await api.post(retryPath(FIRM, sent), operator, {})).status).toBe(409);

    // The list and /health no longer show it; the other refused email is still there.
    const list = await api.get(`${failedPath(FIRM)}?minPosition=${requeued.position}`, operator);
    expect(
      list.body.items.map((item: { recipient: { userId: string } }) => item.recipient.userId),
    ).toEqual(['left']);
    expect((await api.get('/health')).body.mail).toMatchObject({ pending: 0, failed: 1 });
    // The refused address was never tried again.
    expect(sink.refused.sort()).toEqual(['left@old.example', 'moved@old.example']);
  });

  it('is not queued again for a user who is no longer active, and nothing is appended', async () => {
    const left = messageIdOf(await firmEvents('EmailQueued'), 'left');
    expectOk(
      await api.post(`/v1/firms/${FIRM}/users/left/deactivate`, host, {
        reason: 'account-disabled',
      }),
    );
    // The policy re-arms the user's invitation: let it finish before counting events.
    await mailSettled(service);
    const head = (await service.events()).length;
    const refused = await api.post(retryPath(FIRM, left), operator, {});
    expect(refused.status).toBe(409);
    expect(refused.body.type).toMatch(/recipient-not-active$/);
    expect((await service.events()).length).toBe(head);
    expect((await api.post(retryPath(FIRM, left), token('auditor'), {})).status).toBe(403);
  });
});

describe('Which SMTP refusals are permanent (RFC 5321 §4.2.1)', () => {
  const smtpError = (responseCode: number, command: string) =>
    Object.assign(new Error('refused'), {
      responseCode,
      command,
      response: `${responseCode} 5.0.0 refused`,
    });

  it('a 5xx to the recipient or to the message is permanent; the reply text is kept', () => {
    expect(permanentRefusalOf(smtpError(550, 'RCPT TO'))).toMatchObject({
      responseCode: 550,
      response: '5.0.0 refused',
    });
    expect(permanentRefusalOf(smtpError(554, 'DATA'))).toMatchObject({ responseCode: 554 });
  });

  it('a 4xx, a 503, a refused login or sender, and a connection failure are not', () => {
    for (const error of [
      smtpError(451, 'RCPT TO'),
      smtpError(503, 'RCPT TO'),
      smtpError(535, 'AUTH PLAIN'),
      smtpError(550, 'MAIL FROM'),
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNECTION' }),
      'not an error',
    ]) {
      expect(permanentRefusalOf(error)).toBeUndefined();
    }
  });
});
