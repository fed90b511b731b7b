// @ts-check
/*
 * /admin: the firm admin's MFA page (subscription, configuration, counters,
 * usage and enrolled users), on the public API with the admin's token. Every
 * action answers the log position of its effect; the reads that follow ask for
 * that position (`minPosition`), so the page never shows a state older than
 * the admin's own last action.
 */
import {
  after,
  api,
  byId,
  firmPath,
  loadScript,
  h,
  perform,
  plural,
  reportFailure,
  startSignedIn,
  when,
} from './common.js';

/**
 * @typedef {{ status: 'none' | 'requested' | 'active' | 'cancelled', plan: string | null,
 *   licenseCount: number }} Subscription
 * @typedef {{ corporationId: string, corpUsers: boolean, foreignNationals: boolean }} SpecificCorporation
 * @typedef {{ caseManagers: boolean, vendorCaseManagers: boolean, corporations: { mode: 'all' | 'specific',
 *   corpUsers: boolean, foreignNationals: boolean, specific: SpecificCorporation[] } }} Enablement
 * @typedef {{ caseManagers: number, vendorCaseManagers: number, corpUsers: number,
 *   foreignNationals: number }} RoleFigures
 * @typedef {{ status: string, licenseCount: number, seatsInUse: number, unutilized: number,
 *   usagePercent: number }} Usage
 * @typedef {{ at: string, position: string, seatsInUse: number, licenseCount: number,
 *   usagePercent: number }} UsagePoint
 * @typedef {{ from: string | null, to: string, licenseCount: number, seatsInUse: number,
 *   points: UsagePoint[] }} UsageHistory
 * @typedef {{ userId: string, name: string, email: string, organization: string | null,
 *   role: string, corporationId: string | null, factors: string[], enrolledAt: string,
 *   enforced: boolean }} EnrolledUser
 */

const ROLE_NAMES = /** @type {const} */ ({
  'case-manager': 'Case manager',
  'vendor-case-manager': 'Vendor case manager',
  'corp-user': 'Corp user',
  'foreign-national': 'Foreign national',
});
const COUNTER_ROWS = /** @type {const} */ ([
  ['caseManagers', 'Case managers'],
  ['vendorCaseManagers', 'Vendor case managers'],
  ['corpUsers', 'Corp users'],
  ['foreignNationals', 'Foreign nationals'],
]);
const FACTOR_NAMES = /** @type {Record<string, string>} */ ({
  totp: 'Authenticator app',
  webauthn: 'Security key',
});
const SUBSCRIPTION_STATUS = {
  none: 'Not subscribed',
  requested: 'Requested, waiting for activation',
  active: 'Active',
  cancelled: 'Cancelled',
};
const PAGE_SIZE = 20;

/** The page's state: who is signed in and what it last read. */
const state = {
  firm: '',
  role: '',
  /** @type {Subscription | undefined} */
  subscription: undefined,
  /** @type {Enablement | undefined} */
  enablement: undefined,
  /** Corporation names by id, from the corporations read model. @type {Map<string, string>} */
  corporationNames: new Map(),
  enrolled: {
    search: '',
    role: '',
    /** The cursor of each page seen so far; the first page has none. @type {Array<string | undefined>} */
    cursors: [undefined],
    page: 0,
    /** @type {string | null} */
    nextCursor: null,
  },
  /** @type {any} */
  chart: undefined,
  /** How much time the chart spans (ms): its ticks show hours within two days. */
  chartSpanMs: 0,
};

const isSuperuser = () => state.role === 'superuser';

function start() {
  const claims = startSignedIn((signedIn) => {
    if (signedIn.role === 'user') {
      return "This page is for your firm's administrators. Your own devices and security keys are on the enrollment page: open it from the application.";
    }
    if (!['superuser', 'operator'].includes(signedIn.role) || !signedIn.firm) {
      return "This page is for your firm's administrators, with a link for one firm.";
    }
    return undefined;
  });
  if (!claims) return;
  state.firm = claims.firm;
  state.role = claims.role;
  wireSubscription();
  wireConfiguration();
  wireEnrolledUsers();
  byId('refresh').addEventListener('click', (event) => {
    void perform(/** @type {HTMLButtonElement} */ (event.currentTarget), async () => {
      await refresh(undefined);
      return 'Up to date.';
    });
  });
  renderConfigurationAvailability();
  refresh(undefined)
    // When the page first shows its data: what `npm run bench` (section pages) measures.
    .then(() => performance.mark('mfa:ready'))
    .catch(reportFailure);
}

/**
 * Reads everything the page shows, at least as of `position`. Each part shows
 * what it could read; the first refusal is thrown, for the caller to show.
 * @param {string | undefined} position the position of the admin's last action
 */
async function refresh(position) {
  const content = byId('content');
  content.setAttribute('aria-busy', 'true');
  const reads = [
    loadSubscription(),
    loadUsage(position),
    loadCounters(position),
    loadEnrolled(position),
  ];
  if (isSuperuser()) reads.push(loadEnablement(), loadCorporationNames(position));
  const results = await Promise.allSettled(reads);
  content.setAttribute('aria-busy', 'false');
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw /** @type {PromiseRejectedResult} */ (failed).reason;
}

// ---- Subscription ----

async function loadSubscription() {
  state.subscription = /** @type {Subscription} */ (
    await api('GET', firmPath(state.firm, 'mfa', 'subscription'))
  );
  renderSubscription();
  renderConfigurationAvailability();
}

function renderSubscription() {
  const subscription = state.subscription;
  if (!subscription) return;
  byId('subscription-status').textContent = SUBSCRIPTION_STATUS[subscription.status];
  byId('subscription-plan').textContent = subscription.plan ?? '—';
  byId('subscription-licenses').textContent = String(subscription.licenseCount);
  const notes = {
    none: isSuperuser()
      ? 'Subscribe to let your firm use multi-factor authentication. The accounts team will get in touch to confirm your request and activate the feature.'
      : 'The firm has not asked for a subscription.',
    requested:
      'Your request was sent. The accounts team will get in touch to confirm it and activate MFA for your firm.',
    active: 'MFA is active for your firm.',
    cancelled: 'The subscription was cancelled: MFA is off, and enrollments are kept dormant.',
  };
  byId('subscription-note').textContent = notes[subscription.status];
  const canRequest = subscription.status === 'none' || subscription.status === 'cancelled';
  byId('subscribe-form').hidden = !(isSuperuser() && canRequest);
  byId('activate-form').hidden = !(state.role === 'operator' && subscription.status !== 'active');
  byId('licenses-form').hidden = !(state.role === 'operator' && subscription.status === 'active');
}

function wireSubscription() {
  byId('subscribe-form').addEventListener('submit', (event) => {
    event.preventDefault();
    void perform(/** @type {HTMLButtonElement} */ (byId('subscribe')), async () => {
      const answer = await api('POST', firmPath(state.firm, 'mfa', 'subscription', 'request'), {});
      await refresh(answer.position);
      return 'Subscription requested. It is waiting for activation.';
    });
  });
  byId('activate-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const licenseCount = Number(/** @type {HTMLInputElement} */ (byId('activate-licenses')).value);
    const plan = /** @type {HTMLInputElement} */ (byId('activate-plan')).value.trim();
    void perform(/** @type {HTMLButtonElement} */ (byId('activate')), async () => {
      const answer = await api('POST', firmPath(state.firm, 'mfa', 'subscription', 'activate'), {
        licenseCount,
        plan,
      });
      await refresh(answer.position);
      return `Subscription activated with ${licenseCount} licenses.`;
    });
  });
  byId('licenses-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const licenseCount = Number(/** @type {HTMLInputElement} */ (byId('license-count')).value);
    void perform(/** @type {HTMLButtonElement} */ (byId('change-licenses')), async () => {
      const answer = await api('PUT', firmPath(state.firm, 'mfa', 'licenses'), { licenseCount });
      await refresh(answer.position);
      return `The license count is now ${licenseCount}.`;
    });
  });
}

// ---- Configuration ----

const switches = {
  caseManagers: () => /** @type {HTMLInputElement} */ (byId('enable-case-managers')),
  vendorCaseManagers: () => /** @type {HTMLInputElement} */ (byId('enable-vendor-case-managers')),
  allCorpUsers: () => /** @type {HTMLInputElement} */ (byId('enable-all-corp-users')),
  allForeignNationals: () => /** @type {HTMLInputElement} */ (byId('enable-all-foreign-nationals')),
};

async function loadEnablement() {
  state.enablement = /** @type {Enablement} */ (
    await api('GET', firmPath(state.firm, 'mfa', 'enablement'))
  );
  renderEnablement();
}

function renderConfigurationAvailability() {
  const active = state.subscription?.status === 'active';
  // An operator sees the counters; the switches are the firm's superusers' own.
  byId('configuration-note').hidden = active || !isSuperuser();
  for (const id of ['configuration', 'corporations']) {
    const fieldset = /** @type {HTMLFieldSetElement} */ (byId(id));
    fieldset.hidden = !isSuperuser();
    fieldset.disabled = !active;
  }
}

function renderEnablement() {
  const enablement = state.enablement;
  if (!enablement) return;
  switches.caseManagers().checked = enablement.caseManagers;
  switches.vendorCaseManagers().checked = enablement.vendorCaseManagers;
  const { mode, corpUsers, foreignNationals, specific } = enablement.corporations;
  /** @type {HTMLInputElement} */ (byId(mode === 'all' ? 'mode-all' : 'mode-specific')).checked =
    true;
  byId('mode-all-panel').hidden = mode !== 'all';
  byId('mode-specific-panel').hidden = mode !== 'specific';
  switches.allCorpUsers().checked = corpUsers;
  switches.allForeignNationals().checked = foreignNationals;
  renderSpecificCorporations(specific);
  renderFoundCorporations();
}

/**
 * Sends one enablement command and shows its answer (the whole configuration).
 * @param {HTMLInputElement | HTMLButtonElement} control
 * @param {'PUT' | 'DELETE'} method
 * @param {string[]} path after `mfa/enablement`
 * @param {object | undefined} body
 * @param {string} done what happened, in words
 */
function changeEnablement(control, method, path, body, done) {
  return perform(control, async () => {
    try {
      const answer = await api(method, firmPath(state.firm, 'mfa', 'enablement', ...path), body);
      state.enablement = answer;
      renderEnablement();
      await refresh(answer.position);
      return done;
    } catch (error) {
      // The switch shows what is true, not what was asked.
      renderEnablement();
      throw error;
    }
  });
}

function wireConfiguration() {
  switches.caseManagers().addEventListener('change', (event) => {
    const enabled = /** @type {HTMLInputElement} */ (event.target).checked;
    void changeEnablement(
      switches.caseManagers(),
      'PUT',
      ['case-managers'],
      { enabled },
      `MFA is ${enabled ? 'enabled' : 'disabled'} for all case managers.`,
    );
  });
  switches.vendorCaseManagers().addEventListener('change', (event) => {
    const enabled = /** @type {HTMLInputElement} */ (event.target).checked;
    void changeEnablement(
      switches.vendorCaseManagers(),
      'PUT',
      ['vendor-case-managers'],
      { enabled },
      `MFA is ${enabled ? 'enabled' : 'disabled'} for all vendor case managers.`,
    );
  });
  for (const id of ['mode-all', 'mode-specific']) {
    byId(id).addEventListener('change', (event) => {
      const input = /** @type {HTMLInputElement} */ (event.target);
      const mode = input.value;
      const body =
        mode === 'all'
          ? {
              mode,
              corpUsers: switches.allCorpUsers().checked,
              foreignNationals: switches.allForeignNationals().checked,
            }
          : { mode };
      void changeEnablement(
        input,
        'PUT',
        ['corporations'],
        body,
        mode === 'all'
          ? 'MFA now follows the switches for all corporations and foreign nationals.'
          : 'MFA now applies to the specific corporations in the list.',
      );
    });
  }
  const allSwitch = () => ({
    mode: 'all',
    corpUsers: switches.allCorpUsers().checked,
    foreignNationals: switches.allForeignNationals().checked,
  });
  switches.allCorpUsers().addEventListener('change', () => {
    void changeEnablement(
      switches.allCorpUsers(),
      'PUT',
      ['corporations'],
      allSwitch(),
      `MFA is ${switches.allCorpUsers().checked ? 'enabled' : 'disabled'} for the corp users of all corporations.`,
    );
  });
  switches.allForeignNationals().addEventListener('change', () => {
    void changeEnablement(
      switches.allForeignNationals(),
      'PUT',
      ['corporations'],
      allSwitch(),
      `MFA is ${switches.allForeignNationals().checked ? 'enabled' : 'disabled'} for the foreign nationals of all corporations.`,
    );
  });
  byId('corporation-search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    void searchCorporations();
  });
}

/** @param {string | undefined} position */
async function loadCorporationNames(position) {
  const answer = await api(
    'GET',
    after(`${firmPath(state.firm, 'corporations')}?limit=100`, position),
  );
  for (const item of answer.items) state.corporationNames.set(item.corporationId, item.name);
  if (state.enablement) renderSpecificCorporations(state.enablement.corporations.specific);
}

/**
 * @typedef {{ corporationId: string, name: string, corpUsers: number, foreignNationals: number }} FoundCorporation
 */
/** The last search's results, drawn again whenever the list of specific corporations changes. @type {FoundCorporation[]} */
let foundCorporations = [];

async function searchCorporations() {
  const text = /** @type {HTMLInputElement} */ (byId('corporation-search')).value.trim();
  await perform(null, async () => {
    const answer = await api(
      'GET',
      `${firmPath(state.firm, 'corporations')}?limit=20&search=${encodeURIComponent(text)}`,
    );
    foundCorporations = answer.items;
    renderFoundCorporations();
    return answer.items.length === 0
      ? `No registered corporation matches "${text}".`
      : `${plural(answer.items.length, 'corporation')} found.`;
  });
}

function renderFoundCorporations() {
  const chosen = new Set(state.enablement?.corporations.specific.map((c) => c.corporationId));
  byId('corporation-results').replaceChildren(
    ...foundCorporations.map((item) => {
      state.corporationNames.set(item.corporationId, item.name);
      const added = chosen.has(item.corporationId);
      const add = h(
        'button',
        { type: 'button', id: `add-${item.corporationId}`, disabled: added },
        [added ? 'Added' : 'Add'],
      );
      add.setAttribute('aria-label', `${added ? 'Added' : 'Add'} ${item.name}`);
      add.addEventListener(
        'click',
        () =>
          void changeEnablement(
            add,
            'PUT',
            ['corporations', item.corporationId],
            { corpUsers: true, foreignNationals: true },
            `MFA is enabled for the corp users and foreign nationals of ${item.name}.`,
          ),
      );
      return h('li', {}, [
        h('span', {}, [
          h('strong', {}, [item.name]),
          ` · ${plural(item.corpUsers, 'corp user')}, ${plural(item.foreignNationals, 'foreign national')}`,
        ]),
        add,
      ]);
    }),
  );
}

/** @param {SpecificCorporation[]} specific */
function renderSpecificCorporations(specific) {
  const rows = specific.map((corporation) => {
    const name = state.corporationNames.get(corporation.corporationId) ?? corporation.corporationId;
    /** @param {'corpUsers' | 'foreignNationals'} field @param {string} label */
    const toggle = (field, label) => {
      const input = h('input', {
        type: 'checkbox',
        role: 'switch',
        id: `corp-${corporation.corporationId}-${field}`,
        checked: corporation[field],
      });
      input.setAttribute('aria-label', `${label} of ${name}`);
      input.addEventListener(
        'change',
        () =>
          void changeEnablement(
            input,
            'PUT',
            ['corporations', corporation.corporationId],
            { ...pick(corporation), [field]: input.checked },
            `MFA is ${input.checked ? 'enabled' : 'disabled'} for the ${label.toLowerCase()} of ${name}.`,
          ),
      );
      return input;
    };
    const remove = h(
      'button',
      { type: 'button', class: 'secondary', id: `remove-${corporation.corporationId}` },
      ['Remove'],
    );
    remove.setAttribute('aria-label', `Remove ${name}`);
    remove.addEventListener(
      'click',
      () =>
        void changeEnablement(
          remove,
          'DELETE',
          ['corporations', corporation.corporationId],
          undefined,
          `${name} was removed from the list.`,
        ),
    );
    return h('tr', {}, [
      h('th', { scope: 'row' }, [name]),
      h('td', {}, [toggle('corpUsers', 'Corp users')]),
      h('td', {}, [toggle('foreignNationals', 'Foreign nationals')]),
      h('td', {}, [remove]),
    ]);
  });
  if (rows.length === 0) {
    rows.push(
      h('tr', {}, [h('td', { colspan: 4 }, ['No corporation yet: find one above and add it.'])]),
    );
  }
  byId('specific-rows').replaceChildren(...rows);
}

/** @param {SpecificCorporation} corporation */
const pick = ({ corpUsers, foreignNationals }) => ({ corpUsers, foreignNationals });

// ---- Counters ----

/** @param {string | undefined} position */
async function loadCounters(position) {
  const counters = /** @type {{ enabled: RoleFigures, enrolled: RoleFigures }} */ (
    await api('GET', after(firmPath(state.firm, 'mfa', 'counters'), position))
  );
  byId('counter-rows').replaceChildren(
    ...COUNTER_ROWS.map(([key, label]) =>
      h('tr', { 'data-role': key }, [
        h('th', { scope: 'row' }, [label]),
        h('td', { class: 'number' }, [String(counters.enabled[key])]),
        h('td', { class: 'number' }, [String(counters.enrolled[key])]),
      ]),
    ),
  );
}

// ---- Usage ----

/** @param {string | undefined} position */
async function loadUsage(position) {
  const [usage, history] = /** @type {[Usage, UsageHistory]} */ (
    await Promise.all([
      api('GET', after(firmPath(state.firm, 'mfa', 'usage'), position)),
      api('GET', after(firmPath(state.firm, 'mfa', 'usage', 'history'), position)),
    ])
  );
  byId('usage-licenses').textContent = String(usage.licenseCount);
  byId('usage-seats').textContent = String(usage.seatsInUse);
  byId('usage-unutilized').textContent = String(usage.unutilized);
  const gauge = /** @type {HTMLMeterElement} */ (byId('usage-gauge'));
  gauge.value = Math.min(usage.usagePercent, 100);
  gauge.textContent = `${usage.usagePercent} %`;
  byId('usage-percent').textContent = `${usage.usagePercent} %`;
  const warning = byId('usage-warning');
  warning.hidden = usage.usagePercent < 80;
  warning.textContent =
    usage.usagePercent >= 100
      ? 'All MFA licenses are in use. Users who are MFA-enabled but not enrolled cannot enroll, and may log in with a single factor until the license count is increased (ask your account team).'
      : `${usage.usagePercent} % of your MFA licenses are in use.`;
  renderCrossings(history.points);
  await renderChart(history);
}

/** @param {UsageHistory} history */
async function renderChart(history) {
  // Chart.js (200 kB) is loaded when the chart is first drawn: nothing else waits for it.
  const Chart = await loadScript('/ui/vendor/chart.umd.min.js', 'Chart');
  const canvas = /** @type {HTMLCanvasElement} */ (byId('usage-chart'));
  // The lines step at each change and run on to the time of the answer.
  // Nothing to draw before the first change (a firm that never subscribed).
  byId('usage-chart-figure').hidden = history.points.length === 0;
  if (history.points.length === 0) return;
  const points = [...history.points];
  const last = points[points.length - 1];
  // The axis spans at least an hour, so that a single change still draws as a line.
  const start = Date.parse(points[0].at);
  const end = Math.max(Date.parse(history.to), start + 3600 * 1000);
  if (end > Date.parse(last.at)) points.push({ ...last, at: new Date(end).toISOString() });
  state.chartSpanMs = end - start;
  /** @param {(p: UsagePoint) => number} value */
  const series = (value) => points.map((p) => ({ x: Date.parse(p.at), y: value(p) }));
  const data = {
    datasets: [
      {
        label: 'Seats in use',
        data: series((p) => p.seatsInUse),
        stepped: true,
        borderColor: '#0b57d0',
        backgroundColor: 'rgba(11, 87, 208, 0.12)',
        fill: 'origin',
        borderWidth: 2,
        pointRadius: 0,
      },
      {
        label: 'License count (100 %)',
        data: series((p) => p.licenseCount),
        stepped: true,
        borderColor: '#a50e0e',
        backgroundColor: '#a50e0e',
        borderWidth: 2,
        pointRadius: 0,
      },
      {
        label: '80 % of the licenses',
        data: series((p) => p.licenseCount * 0.8),
        stepped: true,
        borderColor: '#8a4b00',
        backgroundColor: '#8a4b00',
        borderDash: [6, 4],
        borderWidth: 2,
        pointRadius: 0,
      },
    ],
  };
  if (state.chart) {
    state.chart.data = data;
    Object.assign(state.chart.options.scales.x, { min: start, max: end });
    state.chart.update();
    return;
  }
  state.chart = new Chart(canvas, {
    type: 'line',
    data,
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      interaction: { mode: 'nearest', axis: 'x', intersect: false },
      scales: {
        x: {
          type: 'linear',
          min: start,
          max: end,
          ticks: {
            maxTicksLimit: 6,
            color: '#333',
            /** @param {number} value */
            callback: (value) => tickLabel(value, state.chartSpanMs),
          },
        },
        y: {
          beginAtZero: true,
          ticks: { precision: 0, color: '#333' },
          title: { display: true, text: 'Seats', color: '#333' },
        },
      },
      plugins: {
        legend: { position: 'bottom', labels: { color: '#222' } },
        tooltip: {
          callbacks: {
            /** @param {Array<{ parsed: { x: number } }>} items */
            title: (items) => when(new Date(items[0].parsed.x).toISOString()),
          },
        },
      },
    },
  });
}

/**
 * A time axis label: the day, with the hour when the chart spans two days or less.
 * @param {number} ms epoch milliseconds
 * @param {number} spanMs what the chart spans
 */
function tickLabel(ms, spanMs) {
  const date = new Date(ms);
  return spanMs <= 2 * 24 * 3600 * 1000
    ? date.toLocaleString(undefined, {
        month: 'short',
        day: 'numeric',
        hour: 'numeric',
        minute: '2-digit',
      })
    : date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}

/**
 * Says in words when usage first reached 80 % and 100 % of the licenses, and
 * each later time it came back up to them: what the chart shows, for readers
 * who do not see it.
 * @param {UsagePoint[]} points
 */
function renderCrossings(points) {
  /** @type {string[]} */
  const lines = [];
  let previous = 0;
  for (const point of points) {
    for (const threshold of [80, 100]) {
      if (previous < threshold && point.usagePercent >= threshold) {
        lines.push(
          `Usage reached ${threshold} % of the licenses on ${when(point.at)} (${point.seatsInUse} of ${point.licenseCount} seats).`,
        );
      }
    }
    previous = point.usagePercent;
  }
  if (lines.length === 0) {
    lines.push(
      points.length === 0 ? 'No license usage yet.' : 'Usage has not reached 80 % of the licenses.',
    );
  }
  byId('usage-crossings').replaceChildren(...lines.map((line) => h('li', {}, [line])));
}

// ---- Enrolled users ----

/** @param {string | undefined} position */
async function loadEnrolled(position) {
  const { search, role, cursors, page } = state.enrolled;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (search) query.set('search', search);
  if (role) query.set('role', role);
  const cursor = cursors[page];
  if (cursor) query.set('cursor', cursor);
  const answer = await api(
    'GET',
    after(`${firmPath(state.firm, 'mfa', 'enrolled-users')}?${query}`, position),
  );
  state.enrolled.nextCursor = answer.nextCursor ?? null;
  /** @type {EnrolledUser[]} */
  const items = answer.items;
  const rows = items.map((user) => {
    /** @type {HTMLButtonElement | undefined} */
    let reset;
    if (isSuperuser()) {
      reset = h('button', { type: 'button', class: 'danger', id: `reset-${user.userId}` }, [
        'Reset MFA enrollment',
      ]);
      reset.setAttribute('aria-label', `Reset MFA enrollment of ${user.name}`);
      const button = reset;
      reset.addEventListener('click', () => confirmReset(user, button));
    }
    return h('tr', { 'data-user-id': user.userId }, [
      h('th', { scope: 'row' }, [user.name]),
      h('td', {}, [user.organization ?? '—']),
      h('td', {}, [ROLE_NAMES[/** @type {keyof typeof ROLE_NAMES} */ (user.role)] ?? user.role]),
      h('td', {}, [user.factors.map((factor) => FACTOR_NAMES[factor] ?? factor).join(', ')]),
      h('td', {}, [when(user.enrolledAt)]),
      h('td', {}, [reset]),
    ]);
  });
  if (rows.length === 0) {
    const none = search || role ? 'No enrolled user matches.' : 'No user has enrolled yet.';
    rows.push(h('tr', {}, [h('td', { colspan: 6 }, [none])]));
  }
  byId('enrolled-rows').replaceChildren(...rows);
  /** @type {HTMLButtonElement} */ (byId('enrolled-previous')).disabled = page === 0;
  /** @type {HTMLButtonElement} */ (byId('enrolled-next')).disabled = !state.enrolled.nextCursor;
  byId('enrolled-page').textContent = `Page ${page + 1}`;
}

function wireEnrolledUsers() {
  byId('enrolled-filter').addEventListener('submit', (event) => {
    event.preventDefault();
    state.enrolled.search = /** @type {HTMLInputElement} */ (byId('enrolled-search')).value.trim();
    state.enrolled.role = /** @type {HTMLSelectElement} */ (byId('enrolled-role')).value;
    state.enrolled.cursors = [undefined];
    state.enrolled.page = 0;
    void perform(null, () => loadEnrolled(undefined));
  });
  // A role chosen applies at once, as a search does on Enter.
  byId('enrolled-role').addEventListener('change', () =>
    /** @type {HTMLFormElement} */ (byId('enrolled-filter')).requestSubmit(),
  );
  byId('enrolled-next').addEventListener('click', () => {
    if (!state.enrolled.nextCursor) return;
    state.enrolled.cursors[state.enrolled.page + 1] = state.enrolled.nextCursor;
    state.enrolled.page += 1;
    void perform(null, () => loadEnrolled(undefined));
  });
  byId('enrolled-previous').addEventListener('click', () => {
    if (state.enrolled.page === 0) return;
    state.enrolled.page -= 1;
    void perform(null, () => loadEnrolled(undefined));
  });
  const dialog = /** @type {HTMLDialogElement} */ (byId('reset-dialog'));
  byId('reset-cancel').addEventListener('click', () => dialog.close());
}

/**
 * Asks for the reason, then resets the user's enrollment: every factor goes,
 * the seat is freed, and the user enrolls again at the next login.
 * @param {EnrolledUser} user
 * @param {HTMLButtonElement} opener
 */
function confirmReset(user, opener) {
  const dialog = /** @type {HTMLDialogElement} */ (byId('reset-dialog'));
  const form = /** @type {HTMLFormElement} */ (byId('reset-form'));
  const reason = /** @type {HTMLTextAreaElement} */ (byId('reset-reason'));
  byId('reset-text').textContent =
    `Reset the MFA enrollment of ${user.name}? Their devices and security keys are removed and ` +
    'their license is freed; they will be asked to enroll again at their next login.';
  reason.value = '';
  form.onsubmit = (event) => {
    event.preventDefault();
    const text = reason.value.trim();
    if (!text) {
      reason.focus();
      return;
    }
    void perform(/** @type {HTMLButtonElement} */ (byId('reset-confirm')), async () => {
      const answer = await api('POST', firmPath(state.firm, 'users', user.userId, 'mfa', 'reset'), {
        reason: text,
      });
      dialog.close();
      await refresh(answer.position);
      byId('enrolled-search').focus();
      return `The MFA enrollment of ${user.name} was reset.`;
    });
  };
  dialog.onclose = () => {
    if (opener.isConnected) opener.focus();
  };
  dialog.showModal();
  reason.focus();
}

start();
