import { RunningService, startService } from '../support/harness';
import { activeFirm, host, mfaPath, registerUser } from '../support/mfa';

/*
 * Every event is hashed over its RFC 8785 canonical form (ADR 0017), which
 * cannot hold a lone UTF-16 surrogate: a JSON body may spell one (`\ud800`)
 * although its bytes are valid UTF-8. Such a body is bad input, refused with
 * 400 before anything is decided, in any field, never a 500, and nothing is
 * appended.
 */
describe('A body holding a lone surrogate', () => {
  let service: RunningService;
  beforeAll(async () => {
    service = await startService();
    await activeFirm(service.api, 'acme', 5);
    await registerUser(service.api, 'acme', 'ann');
  });
  afterAll(() => service.stop());

  it.each([
    [
      'an email',
      'PUT',
      '/v1/firms/acme/users/bob',
      '{"role":"case-manager","name":"Bob","email":"b\\ud800@x.com"}',
      'email',
    ],
    [
      'a trailing high surrogate',
      'PUT',
      '/v1/firms/acme/users/bob',
      '{"role":"case-manager","name":"Bob","email":"b@x.com\\udbff"}',
      'email',
    ],
    [
      'a key',
      'PUT',
      '/v1/firms/acme/users/bob',
      '{"role":"case-manager","name":"Bob","email":"b@x.com","\\udc00":1}',
      '\udc00',
    ],
    [
      'a nested value',
      'POST',
      `${mfaPath('acme', 'ann')}/totp/enrollment`,
      '{"label":["\\ud83d"]}',
      'label[0]',
    ],
  ])('is refused with 400 naming the field: %s', async (_, method, path, rawBody, field) => {
    const userId = /users\/([^/]+)/.exec(path)![1];
    const ofUser = async () =>
      (await service.events()).filter((e) => e.streamId === `user-acme/${userId}`).length;
    const before = await ofUser();
    const answer = await service.api.request(method, path, {
      token: host,
      rawBody,
    });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(answer.body.errors).toContainEqual(expect.objectContaining({ field }));
    expect(await ofUser()).toBe(before);
  });

  it('is told apart from a well-formed pair, which is text like any other', async () => {
    const answer = await service.api.request('PUT', '/v1/firms/acme/users/cid', {
      token: host,
      rawBody: '{"role":"case-manager","name":"Cid \\ud83d\\ude00","email":"cid@x.com"}',
    });
    expect(answer.status).toBe(200);
    const [registered] = (await service.events()).filter((e) => e.streamId === 'user-acme/cid');
    expect(registered.data.name).toBe('Cid 😀');
  });
});
