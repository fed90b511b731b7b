import { Api, RunningService, startService } from '../support/harness';
import { activeFirm, enrollTotp, expectOk, host, registerUser, superuserOf } from '../support/mfa';

/*
 * Search finds names as people write them (API.md "Dashboards": `search` is
 * case-insensitive, anywhere in the name or organization): "STRAUSS" finds
 * "Strauß", "YILMAZ" finds "Yılmaz", "jose" finds "José", and a name typed
 * decomposed (NFD, as macOS sends it) finds the composed one and back. Users
 * are registered and enrolled over HTTP (TOTP codes from oathtool); every
 * read waits for the position of the last enrollment.
 */

const FIRM = 'acme';
const admin = superuserOf(FIRM);
const nfd = (text: string) => text.normalize('NFD');

/** Name, organization, and whether the name is sent decomposed. */
const PEOPLE: Array<[userId: string, name: string, organization: string | null]> = [
  ['u-strauss', 'Anna Strauß', 'Müller & Söhne'],
  ['u-yilmaz', 'Ayşe Yılmaz', null],
  ['u-nunez', 'José Núñez', 'Café Brûlée'],
  ['u-alves', 'JOSÉ ALVES', null],
  ['u-josephine', 'Josephine Ward', 'Initech'],
  ['u-josh', 'Josh Stone', 'Acme'],
  ['u-demir', 'İlker Demir', 'İstanbul Hukuk'],
  // Sent decomposed, as macOS sends it.
  ['u-ordonez', nfd('Marta Ordóñez'), nfd('Åkesson AB')],
];

/** The fields an enrolled user has in an answer (API.md), nothing else. */
const ITEM_FIELDS = [
  'corporationId',
  'email',
  'enforced',
  'enrolledAt',
  'factors',
  'name',
  'organization',
  'role',
  'userId',
];

describe('Searching names as people write them', () => {
  let service: RunningService;
  let api: Api;
  let position: string;

  beforeAll(async () => {
    service = await startService();
    api = service.api;
    await activeFirm(api, FIRM, PEOPLE.length);
    for (const [userId, name, organization] of PEOPLE) {
      await registerUser(api, FIRM, userId, { name, ...(organization ? { organization } : {}) });
      position = (await enrollTotp(api, FIRM, userId)).position;
    }
  });
  afterAll(() => service.stop());

  async function search(text: string | undefined, paging = '&limit=200'): Promise<any> {
    const query = text === undefined ? '' : `search=${encodeURIComponent(text)}&`;
    const answer = await api.get(
      `/v1/firms/${FIRM}/mfa/enrolled-users?${query}minPosition=${position}${paging}`,
      admin,
    );
    expectOk(answer);
    return answer.body;
  }
  const ids = async (text: string | undefined) =>
    ((await search(text)).items as Array<{ userId: string }>).map((item) => item.userId);

  it.each([
    ['STRAUSS', ['u-strauss']],
    ['strauß', ['u-strauss']],
    ['YILMAZ', ['u-yilmaz']],
    ['yılmaz', ['u-yilmaz']],
    ['ayse', ['u-yilmaz']],
    ['NUNEZ', ['u-nunez']],
    ['Núñez', ['u-nunez']],
    [nfd('Núñez'), ['u-nunez']],
    ['ordóñez', ['u-ordonez']],
    ['ORDONEZ', ['u-ordonez']],
    ['ilker', ['u-demir']],
    ['İLKER', ['u-demir']],
    // Organizations are searched alike.
    ['MULLER & SOHNE', ['u-strauss']],
    [nfd('Müller'), ['u-strauss']],
    ['istanbul', ['u-demir']],
    ['cafe brulee', ['u-nunez']],
    ['akesson', ['u-ordonez']],
    ['ÅKESSON', ['u-ordonez']],
    // Shorter than three characters: still every match.
    ['ss', ['u-ordonez', 'u-strauss']],
    ['ß', ['u-ordonez', 'u-strauss']],
    ['ı', ['u-demir', 'u-josephine', 'u-yilmaz']],
  ])('%j finds %j', async (text, expected) => {
    expect((await ids(text)).sort()).toEqual(expected);
  });

  it('finds "José" by "jose", in name order (case-insensitive), then user id', async () => {
    // Lower-case names: "josephine ward" < "josé alves" < "josé núñez" (code point order).
    expect(await ids('jose')).toEqual(['u-josephine', 'u-alves', 'u-nunez']);
    expect(await ids('JOSÉ')).toEqual(['u-josephine', 'u-alves', 'u-nunez']);
  });

  it('pages a search with the cursor, one user a page, in the same order', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await search('jose', `&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.items.length).toBeLessThanOrEqual(1);
      seen.push(...page.items.map((item: { userId: string }) => item.userId));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['u-josephine', 'u-alves', 'u-nunez']);
  });

  it('lists everyone for an empty search, blanks, or accents alone (they fold to nothing)', async () => {
    const everyone = await ids(undefined);
    expect(everyone).toHaveLength(PEOPLE.length);
    for (const text of ['', '   ', '\u0301', '\u0301\u0308', ' \u0327 ']) {
      expect(await ids(text)).toEqual(everyone);
    }
  });

  it('finds nobody for a text nobody has, short or long', async () => {
    expect(await ids('zzq')).toEqual([]);
    expect(await ids('zq')).toEqual([]);
    expect(await ids('strasse')).toEqual([]);
  });

  it('answers names as registered: the folded copy never leaks', async () => {
    const { items } = await search('o');
    expect(items.length).toBeGreaterThan(0);
    for (const item of items) {
      expect(Object.keys(item).sort()).toEqual(ITEM_FIELDS);
    }
    const body = await search(undefined);
    const byId = new Map(body.items.map((item: any) => [item.userId, item]));
    for (const [userId, name, organization] of PEOPLE) {
      // Byte for byte, decomposed names included.
      expect(byId.get(userId)).toMatchObject({ name, organization });
    }
    const text = JSON.stringify(body);
    expect(text).not.toContain('anna strauss');
    expect(text).not.toContain('ayse yilmaz');
    expect(text).not.toContain('muller & sohne');
    expect(text).not.toMatch(/Fold|Key/);
  });

  it('searches corporations the same way', async () => {
    let named = '0';
    for (const [corporationId, name] of [
      ['strasse', 'Straße GmbH'],
      ['yilmaz', 'Yılmaz Holding'],
      ['nunez', nfd('Núñez y Asociados')],
    ]) {
      const answer = await api.put(`/v1/firms/${FIRM}/corporations/${corporationId}`, host, {
        name,
      });
      expectOk(answer);
      named = answer.body.position as string;
    }
    const corporations = async (text: string) => {
      const answer = await api.get(
        `/v1/firms/${FIRM}/corporations?search=${encodeURIComponent(text)}&minPosition=${named}`,
        admin,
      );
      expectOk(answer);
      return answer.body.items as Array<{ corporationId: string; name: string }>;
    };
    expect((await corporations('STRASSE')).map((c) => c.corporationId)).toEqual(['strasse']);
    expect((await corporations('YILMAZ')).map((c) => c.corporationId)).toEqual(['yilmaz']);
    expect(await corporations('nunez')).toEqual([
      expect.objectContaining({ corporationId: 'nunez', name: nfd('Núñez y Asociados') }),
    ]);
    expect(await corporations('Núñez')).toHaveLength(1);
    expect(await corporations('\u0301')).toHaveLength(3);
  });
});
