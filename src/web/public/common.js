// @ts-check
/*
 * What both pages share: the sign-in token, calls to the public API, the
 * answers in words, and small DOM helpers. No framework: the pages are two
 * forms and a table each (docs/decisions/0019-web-pages-without-a-framework.md).
 *
 * Everything the pages show comes from the public API (the same endpoints as
 * the host application's), with the token of the person signed in.
 */

/**
 * @typedef {{ sub: string, role: string, firm?: string, exp?: number }} Claims
 * @typedef {{ type?: string, title?: string, status?: number, detail?: string,
 *   errors?: Array<{ field: string, message: string }>, verified?: boolean,
 *   attemptsLeft?: number }} Problem
 */

/**
 * The sign-in token. The host application links to a page with a short-lived
 * token in the URL fragment (`#token=…`): a browser never sends a fragment to
 * a server, so it reaches no access log or proxy. The page takes it out of the
 * address bar at once (so it is not bookmarked or shared from there) and keeps
 * it in this variable only: closing or reloading the tab, or Sign out, forgets
 * it. The browser's history still recorded the link as it was opened, so the
 * link itself must be short-lived (docs/web-pages.md, "Signing in").
 * @type {string | undefined}
 */
let token;
/** @type {Claims | undefined} */
let claims;

/**
 * Reads the token from the fragment once, on load.
 * @returns {Claims | undefined} the token's claims (not verified here: the
 *   service verifies the token on every call), or undefined when there is none.
 */
function signIn() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get('token');
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  if (!given) return undefined;
  const parsed = decodeClaims(given);
  if (!parsed) return undefined;
  token = given;
  claims = parsed;
  return claims;
}

/**
 * @param {string} jwt
 * @returns {Claims | undefined}
 */
function decodeClaims(jwt) {
  const payload = jwt.split('.')[1];
  if (!payload) return undefined;
  try {
    const text = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
    const parsed = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof parsed.sub !== 'string' || typeof parsed.role !== 'string') return undefined;
    return parsed;
  } catch {
    return undefined;
  }
}

/**
 * Signs the page in from its link and shows its content, or shows in words
 * why it cannot: no link, a link the page does not serve (its role or firm),
 * or an expired one. Both pages start here.
 * @param {(claims: Claims) => string | undefined} refusal the page's own
 *   words when the link's role or firm does not fit it, undefined when it does
 * @returns {(Claims & { firm: string }) | undefined} the claims of a link
 *   for one firm, or undefined when the page shows a sign-in problem instead
 */
export function startSignedIn(refusal) {
  const signedIn = signIn();
  if (!signedIn) {
    showSignInProblem(
      'Open this page from the application: it signs you in with a link of its own, ' +
        'for this tab only.',
    );
    return undefined;
  }
  const refused = refusal(signedIn);
  const firm = signedIn.firm;
  if (refused || !firm) {
    showSignInProblem(refused ?? 'Open this page from the application, with a link for one firm.');
    return undefined;
  }
  if (secondsLeft() <= 0) {
    showSignInProblem('Your sign-in link has expired. Open this page again from the application.');
    return undefined;
  }
  showSignedIn();
  byId('content').hidden = false;
  return { ...signedIn, firm };
}

/** Forgets the token: the page shows the sign-in problem (the token itself stays valid until it expires). */
export function signOut() {
  token = undefined;
  claims = undefined;
  showSignInProblem('You signed out. Open the page again from the application to sign in.');
}

/** Seconds until the token expires (Infinity without `exp`). */
function secondsLeft() {
  if (!claims?.exp) return Infinity;
  return claims.exp - Date.now() / 1000;
}

/** An answer of the API that is not a success, in the API's own words (RFC 9457). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {Problem} problem
   */
  constructor(status, problem) {
    super(problem.detail || problem.title || `The service answered ${status}.`);
    this.status = status;
    this.problem = problem;
  }
}

/**
 * Calls the public API with the signed-in token.
 * @param {'GET' | 'POST' | 'PUT' | 'DELETE'} method
 * @param {string} path e.g. `/v1/firms/acme/mfa/usage`
 * @param {unknown} [body] sent as JSON (commands)
 * @returns {Promise<any>} the parsed JSON answer
 * @throws {ApiError} on any status but 2xx, with the problem the API gave
 */
export async function api(method, path, body) {
  if (!token) throw new ApiError(401, { title: 'Not signed in' });
  /** @type {Record<string, string>} */
  const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
  if (method !== 'GET') {
    headers['content-type'] = 'application/json';
    // One key per action: should the request be retried on the way (a proxy, a
    // dropped connection), the service applies it once. Double clicks are
    // prevented by disabling the control while the action runs (perform).
    headers['idempotency-key'] = crypto.randomUUID();
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: method === 'GET' ? undefined : JSON.stringify(body ?? {}),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, {
      title: 'The service could not be reached',
      detail: 'Check your connection and try again.',
    });
  }
  const text = await response.text();
  /** @type {any} */
  let parsed = {};
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = {};
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

/**
 * An API error in words for a person: the problem's detail, or its title, and
 * the fields a validation refused. Never the raw JSON.
 * @param {unknown} error
 */
export function inWords(error) {
  if (!(error instanceof ApiError)) return 'Something went wrong. Please try again.';
  const { problem, status } = error;
  if (status === 401 && problem.verified === false) {
    // A refused verification (a wrong code or key), not a refused sign-in.
    const left = problem.attemptsLeft;
    const tail =
      left === undefined || left === 0 ? '' : ` ${left} attempt${left === 1 ? '' : 's'} left.`;
    return `${problem.detail || 'Not verified.'}${tail}`;
  }
  if (status === 401) {
    return 'Your sign-in has expired or is not valid. Open this page again from the application.';
  }
  if (status === 403) return 'You are not allowed to do this.';
  const fields = (problem.errors ?? []).map((e) => `${e.field} ${e.message}`).join('; ');
  let main = problem.detail || problem.title || `The service answered ${status}.`;
  // Times in the reader's own zone and words (a lockout's end, say).
  main = main.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g, (iso) => when(iso));
  // A validation refusal says what to fix; a rule's refusal says it in its detail already.
  if (fields && /see errors/i.test(main)) return `Check what you entered: ${fields}.`;
  return main;
}

/**
 * Builds an element. Text goes in as text, never as HTML: names and labels
 * come from tenant data.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | boolean | number | undefined>} [attributes]
 * @param {Array<Node | string | undefined | null | false>} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attributes = {}, children = []) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child);
  }
  return element;
}

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element;
}

/**
 * Tells the person what happened, in the page's live region (read out by
 * screen readers). `error` messages stay until the next message.
 * @param {string} message
 * @param {'info' | 'success' | 'error'} [kind]
 */
export function announce(message, kind = 'info') {
  const region = byId('status');
  region.textContent = message;
  region.dataset.kind = kind;
  region.hidden = message === '';
}

/**
 * Runs an action from a button or a form: disables the control while it runs,
 * announces success, and shows an API refusal in words. A refused sign-in
 * (401 other than a failed verification) replaces the page with the sign-in
 * problem. Keyboard focus stays where the person was: disabling the focused
 * control, or re-rendering its row, would otherwise drop it to the page's
 * body. Controls that are re-rendered carry a stable `id` for this.
 * @param {HTMLButtonElement | HTMLInputElement | HTMLSelectElement | null} control
 * @param {() => Promise<string | void>} action returns the success message
 * @returns {Promise<boolean>} whether the action succeeded
 */
export async function perform(control, action) {
  const focusedId = control && document.activeElement === control ? control.id : '';
  if (control) control.disabled = true;
  announce('');
  try {
    const message = await action();
    if (message) announce(message, 'success');
    return true;
  } catch (error) {
    if (signInRefused(error)) signInExpired();
    else announce(inWords(error), 'error');
    return false;
  } finally {
    if (control) control.disabled = false;
    const lost = document.activeElement === null || document.activeElement === document.body;
    const target = control?.isConnected
      ? control
      : focusedId
        ? document.getElementById(focusedId)
        : null;
    if (lost && (focusedId || control === document.activeElement) && target) target.focus();
  }
}

/**
 * Whether the API refused the token itself (expired, altered, or signed by
 * another key), as opposed to a refused verification code.
 * @param {unknown} error
 */
export function signInRefused(error) {
  return error instanceof ApiError && error.status === 401 && error.problem.verified !== false;
}

/** Replaces the page with the sign-in problem of a refused or expired token. */
export function signInExpired() {
  token = undefined;
  showSignInProblem(
    'Your sign-in has expired or is not valid. Open this page again from the application.',
  );
}

/**
 * Reports a failed read of the page: a refused token replaces the page, any
 * other refusal is announced.
 * @param {unknown} error
 */
export function reportFailure(error) {
  if (signInRefused(error)) signInExpired();
  else announce(inWords(error), 'error');
}

/**
 * Shows the page's sign-in problem instead of its content.
 * @param {string} message
 */
function showSignInProblem(message) {
  announce('');
  byId('sign-out').hidden = true;
  byId('signin-problem-text').textContent = message;
  byId('signin-problem').hidden = false;
  byId('content').hidden = true;
}

/**
 * A date and time in the reader's locale.
 * @param {string | null | undefined} iso
 */
export function when(iso) {
  if (!iso) return 'never';
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/**
 * Adds `minPosition` to a read, so that it reflects the person's own last
 * action (the API waits until its read models have processed that position).
 * @param {string} path
 * @param {string | undefined} position
 */
export function after(path, position) {
  if (!position) return path;
  return `${path}${path.includes('?') ? '&' : '?'}minPosition=${encodeURIComponent(position)}`;
}

/**
 * The path of a firm's resource, each segment encoded:
 * `firmPath('acme', 'users', id, 'mfa', 'reset')`.
 * @param {...string} segments after `/v1/firms/`
 */
export function firmPath(...segments) {
  return ['/v1/firms', ...segments.map(encodeURIComponent)].join('/');
}

/**
 * `count` and a noun, singular or plural: `plural(1, 'corp user')`.
 * @param {number} count
 * @param {string} noun
 */
export function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** Shows who is signed in in the page header, with the Sign out button. */
function showSignedIn() {
  if (!claims) return;
  byId('who').textContent =
    `Signed in as ${claims.sub}${claims.firm ? ` · firm ${claims.firm}` : ''}`;
  const button = byId('sign-out');
  button.hidden = false;
  button.addEventListener('click', signOut);
}

/** @type {Map<string, Promise<any>>} */
const scripts = new Map();

/**
 * Loads a library's script (from this origin, so the page policy allows it)
 * when a page first needs it rather than with the page, and answers the
 * global it defines. A failed load can be tried again.
 * @param {string} src e.g. `/ui/vendor/chart.umd.min.js`
 * @param {string} global the name the script defines on `window`
 * @returns {Promise<any>}
 */
export function loadScript(src, global) {
  let loading = scripts.get(src);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = h('script', { src });
      script.addEventListener('load', () => resolve(/** @type {any} */ (window)[global]));
      script.addEventListener('error', () => {
        scripts.delete(src);
        reject(new ApiError(0, { title: 'A part of the page could not be loaded. Try again.' }));
      });
      document.head.append(script);
    });
    scripts.set(src, loading);
  }
  return loading;
}
