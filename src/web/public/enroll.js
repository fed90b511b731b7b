// @ts-check
/*
 * /enroll: the user's own page. It says what the next login will ask, enrolls
 * an authenticator app (QR code, key for manual entry, first code) or a
 * security key (WebAuthn, through @simplewebauthn/browser), lists the user's
 * factors with their last use, and lets the user try a sign-in. Public API
 * only, with the user's own token (role `user`, `sub` = the user id).
 */
import {
  after,
  api,
  ApiError,
  byId,
  firmPath,
  loadScript,
  h,
  perform,
  reportFailure,
  startSignedIn,
  when,
} from './common.js';

/**
 * @typedef {{ decision: 'verify' | 'enroll' | 'bypass' | 'off', methods: string[],
 *   reason?: string, instructions?: string }} LoginRequirement
 * @typedef {{ factorId: string, type: 'totp' | 'webauthn', label: string | null,
 *   createdAt: string, lastUsedAt: string | null }} Factor
 */

const FACTOR_NAMES = { totp: 'Authenticator app', webauthn: 'Security key' };
const METHOD_WORDS = /** @type {Record<string, string>} */ ({
  totp: 'a code from your authenticator app',
  webauthn: 'your security key',
});

const state = {
  firm: '',
  user: '',
  /** @type {string | undefined} the enrollment being confirmed */
  enrollmentId: undefined,
  /** @type {LoginRequirement | undefined} */
  requirement: undefined,
};

/** @param {...string} segments after the user's own path */
const userPath = (...segments) => firmPath(state.firm, 'users', state.user, ...segments);

/** @simplewebauthn/browser, loaded when a ceremony first needs it (not with the page). */
function webAuthnBrowser() {
  return loadScript('/ui/vendor/simplewebauthn-browser.js', 'SimpleWebAuthnBrowser');
}

function start() {
  const claims = startSignedIn((signedIn) => {
    if (signedIn.role === 'user' && signedIn.firm) return undefined;
    return signedIn.role === 'superuser' || signedIn.role === 'operator'
      ? "This page is for users enrolling their own devices and security keys. Your firm's MFA is managed on the administration page: open it from the application."
      : 'This page is for enrolling your own devices and security keys.';
  });
  if (!claims) return;
  state.firm = claims.firm;
  state.user = claims.sub;
  wire();
  refresh(undefined)
    // When the page first shows its data: what `npm run bench` (section pages) measures.
    .then(() => performance.mark('mfa:ready'))
    .catch(reportFailure);
}

/** @param {string | undefined} position the user's last action */
async function refresh(position) {
  const results = await Promise.allSettled([loadRequirement(position), loadFactors(position)]);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw /** @type {PromiseRejectedResult} */ (failed).reason;
}

/** @param {string | undefined} position */
async function loadRequirement(position) {
  const requirement = /** @type {LoginRequirement} */ (
    await api('GET', after(userPath('mfa', 'login-requirement'), position))
  );
  state.requirement = requirement;
  const words = {
    verify: `Multi-factor authentication is on for your account. At each login you confirm it is you with ${requirement.methods
      .map((method) => METHOD_WORDS[method] ?? method)
      .join(' or ')}.`,
    enroll:
      'Multi-factor authentication is required for your account, and you have not enrolled yet. Enroll an authenticator app or a security key below.',
    bypass:
      'Your firm has used all its MFA licenses: you may continue without MFA for now. You can enroll once a license is free.',
    off: 'Multi-factor authentication is not required for your account.',
  };
  byId('decision').textContent = words[requirement.decision];
  byId('decision').dataset.decision = requirement.decision;
  const detail =
    requirement.decision === 'enroll'
      ? (requirement.instructions ?? '')
      : requirement.decision === 'off'
        ? (requirement.reason ?? '')
        : '';
  byId('decision-detail').textContent = detail;
  byId('decision-detail').hidden = detail === '';
  // Enrolling needs MFA enabled and a free license (or one already held).
  const canEnroll = requirement.decision === 'enroll' || requirement.decision === 'verify';
  byId('totp-section').hidden = !canEnroll;
  byId('webauthn-section').hidden = !canEnroll;
  byId('check-section').hidden = requirement.decision !== 'verify';
  byId('check-totp-form').hidden =
    !requirement.methods.includes('totp') || requirement.decision !== 'verify';
  byId('check-webauthn-form').hidden =
    !requirement.methods.includes('webauthn') || requirement.decision !== 'verify';
}

/** @param {string | undefined} position */
async function loadFactors(position) {
  const answer = await api('GET', after(userPath('mfa', 'factors'), position));
  /** @type {Factor[]} */
  const factors = Array.isArray(answer) ? answer : (answer.items ?? []);
  const rows = factors.map((factor) =>
    h('tr', { 'data-factor-id': factor.factorId }, [
      h('th', { scope: 'row' }, [factor.label || FACTOR_NAMES[factor.type]]),
      h('td', {}, [FACTOR_NAMES[factor.type] ?? factor.type]),
      h('td', {}, [when(factor.createdAt)]),
      h('td', {}, [when(factor.lastUsedAt)]),
    ]),
  );
  if (rows.length === 0) {
    rows.push(h('tr', {}, [h('td', { colspan: 4 }, ['Nothing enrolled yet.'])]));
  }
  byId('factor-rows').replaceChildren(...rows);
}

/**
 * An enrollment step. A rule refusing it (409: no license left, MFA no longer
 * enabled) means the decision changed: read it again, so that the page stops
 * offering what it cannot do, and show the refusal.
 * @param {HTMLButtonElement} control
 * @param {() => Promise<string>} action
 */
function enrollmentStep(control, action) {
  return perform(control, async () => {
    try {
      return await action();
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        await refresh(undefined).catch(() => undefined);
        if (byId('totp-section').hidden) byId('totp-enrollment').hidden = true;
      }
      throw error;
    }
  });
}

/** The `secret` parameter of an otpauth URI (Key URI format), for manual entry. */
function secretOf(/** @type {string} */ otpauthUri) {
  try {
    return new URL(otpauthUri).searchParams.get('secret') ?? '';
  } catch {
    return '';
  }
}

/** Groups a base32 key by four characters, as authenticator apps show it. */
const grouped = (/** @type {string} */ secret) => secret.replace(/(.{4})(?=.)/g, '$1 ');

/** @param {string} id */
const field = (id) => /** @type {HTMLInputElement} */ (byId(id));

function wire() {
  byId('totp-start-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const label = field('totp-label').value.trim();
    void enrollmentStep(/** @type {HTMLButtonElement} */ (byId('totp-start')), async () => {
      const answer = await api(
        'POST',
        userPath('mfa', 'totp', 'enrollment'),
        label ? { label } : {},
      );
      state.enrollmentId = answer.enrollmentId;
      const qr = /** @type {HTMLImageElement} */ (byId('totp-qr'));
      // As an image, the SVG can run nothing (and img-src allows data: URLs).
      qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(answer.qrCodeSvg)}`;
      byId('totp-secret').textContent = grouped(secretOf(answer.otpauthUri));
      byId('totp-expires').textContent = `Finish before ${when(answer.expiresAt)}.`;
      byId('totp-enrollment').hidden = false;
      field('totp-code').value = '';
      field('totp-code').focus();
      return 'Scan the QR code, then enter the code your app shows.';
    });
  });

  byId('totp-confirm-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const code = field('totp-code').value.replace(/\s+/g, '');
    const enrollmentId = state.enrollmentId;
    if (!enrollmentId) return;
    void enrollmentStep(/** @type {HTMLButtonElement} */ (byId('totp-confirm')), async () => {
      const answer = await api(
        'POST',
        userPath('mfa', 'totp', 'enrollment', enrollmentId, 'confirm'),
        { code },
      );
      state.enrollmentId = undefined;
      byId('totp-enrollment').hidden = true;
      byId('totp-secret').textContent = '';
      /** @type {HTMLImageElement} */ (byId('totp-qr')).removeAttribute('src');
      await refresh(answer.position);
      return 'Your authenticator app is enrolled. You will be asked for a code at your next login.';
    });
  });

  byId('webauthn-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const label = field('webauthn-label').value.trim();
    void enrollmentStep(/** @type {HTMLButtonElement} */ (byId('webauthn-register')), async () => {
      const optionsJSON = await api(
        'POST',
        userPath('mfa', 'webauthn', 'registration', 'options'),
        label ? { label } : {},
      );
      const response = await browserCeremony((lib) => lib.startRegistration({ optionsJSON }));
      const answer = await api(
        'POST',
        userPath('mfa', 'webauthn', 'registration', 'verify'),
        response,
      );
      await refresh(answer.position);
      return 'Your security key is registered. Use it at your next login.';
    });
  });

  byId('check-totp-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const code = field('check-code').value.replace(/\s+/g, '');
    void perform(/** @type {HTMLButtonElement} */ (byId('check-totp')), async () => {
      const answer = await api('POST', userPath('mfa', 'totp', 'verify'), { code });
      field('check-code').value = '';
      await loadFactors(answer.position);
      return 'Verified: your authenticator app works.';
    });
  });

  byId('check-webauthn-form').addEventListener('submit', (event) => {
    event.preventDefault();
    void perform(/** @type {HTMLButtonElement} */ (byId('check-webauthn')), async () => {
      const optionsJSON = await api(
        'POST',
        userPath('mfa', 'webauthn', 'authentication', 'options'),
        {},
      );
      const response = await browserCeremony((lib) => lib.startAuthentication({ optionsJSON }));
      const answer = await api(
        'POST',
        userPath('mfa', 'webauthn', 'authentication', 'verify'),
        response,
      );
      await loadFactors(answer.position);
      return 'Verified: your security key works.';
    });
  });
}

/**
 * Runs the browser's WebAuthn ceremony through @simplewebauthn/browser. A
 * person who cancels, or a browser without WebAuthn, gets words rather than
 * the browser's exception.
 * @template T
 * @param {(lib: any) => Promise<T>} ceremony
 * @returns {Promise<T>}
 */
async function browserCeremony(ceremony) {
  if (!window.PublicKeyCredential) {
    throw new ApiError(0, {
      title: 'This browser cannot use security keys',
      detail: 'Use a current browser over https (or on localhost) to register a security key.',
    });
  }
  const lib = await webAuthnBrowser();
  try {
    return await ceremony(lib);
  } catch (error) {
    const name = error instanceof Error ? error.name : '';
    throw new ApiError(0, {
      title: 'The security key did not answer',
      detail:
        name === 'NotAllowedError'
          ? 'The request was cancelled or timed out. Try again, and touch your key when it blinks.'
          : name === 'InvalidStateError'
            ? 'This security key is already registered.'
            : 'The security key could not be used. Try again.',
    });
  }
}

start();
