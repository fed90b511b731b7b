import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import {
  chromium,
  type Browser,
  type BrowserContext,
  type CDPSession,
  type Page,
} from 'playwright-core';
import type { Protocol } from 'playwright-core/types/protocol';

/*
 * WebAuthn in a real browser (RECIPES.md, "WebAuthn in a real browser"):
 * Debian's Chromium driven by playwright-core, a CDP virtual authenticator
 * (CTAP2, user verification on) and @simplewebauthn/browser loaded into a page
 * served from localhost — a secure context, as is any *.localhost host.
 *
 * The test process plays the host application: it fetches options from the
 * service, hands them to the page, and posts what the browser answers back to
 * the service. Nothing here imitates the authenticator or the server library.
 */

const CHROMIUM_PATHS = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'];

export function chromiumPath(): string {
  const found = CHROMIUM_PATHS.find((path) => existsSync(path));
  if (!found) {
    throw new Error(
      "Chromium not found: apt-get install -y --no-install-recommends chromium (never 'npx playwright install')",
    );
  }
  return found;
}

/** Headless Debian Chromium; one per test file. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}

/** The UMD bundle of @simplewebauthn/browser, found from the package's resolved entry. */
function simpleWebAuthnBundle(): Buffer {
  // The package's exports hide package.json: climb from the entry (script/index.js).
  const root = dirname(dirname(require.resolve('@simplewebauthn/browser')));
  return readFileSync(join(root, 'dist', 'bundle', 'index.umd.min.js'));
}

const PAGE = `<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>Security key</title>
    <script src="/simplewebauthn-browser.js"></script>
  </head>
  <body>
    <p id="ready">ready</p>
  </body>
</html>
`;

export interface PageServer {
  port: number;
  /** The page's address on `host` (localhost, or any *.localhost, all secure contexts). */
  url(host?: string): string;
  /** The origin a browser reports for a page on `host`. */
  origin(host?: string): string;
  close(): Promise<void>;
}

/** One HTML page and the @simplewebauthn/browser bundle, on loopback, for any Host. */
export async function startPageServer(): Promise<PageServer> {
  const bundle = simpleWebAuthnBundle();
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://page').pathname;
    if (path === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (path === '/simplewebauthn-browser.js') {
      response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(bundle);
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const origin = (host = 'localhost') => `http://${host}:${port}`;
  return {
    port,
    origin,
    url: (host = 'localhost') => `${origin(host)}/`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/**
 * A credential as the virtual authenticator holds it (`WebAuthn.getCredentials`):
 * ids, user handle and the PKCS#8 private key in standard base64.
 */
export type VirtualCredential = Protocol.WebAuthn.Credential;

/** What a ceremony in the page ended with: the browser's JSON, or the DOMException it threw. */
export type CeremonyResult<T> =
  { ok: true; response: T } | { ok: false; name: string; message: string };

/** CTAP2 over USB, resident keys, user verification on and always given, presence simulated. */
export const SECURITY_KEY: Protocol.WebAuthn.VirtualAuthenticatorOptions = {
  protocol: 'ctap2',
  transport: 'usb',
  hasResidentKey: true,
  hasUserVerification: true,
  isUserVerified: true,
  automaticPresenceSimulation: true,
};

/** A U2F-only key (CTAP1): no resident keys, no user verification, `fido-u2f` attestation. */
export const U2F_SECURITY_KEY: Protocol.WebAuthn.VirtualAuthenticatorOptions = {
  protocol: 'u2f',
  transport: 'usb',
  hasResidentKey: false,
  hasUserVerification: false,
  automaticPresenceSimulation: true,
};

/**
 * What Chromium's virtual authenticator attests with when asked for `direct`
 * attestation, as the browser produced it (Chromium 156, checked by decoding
 * its attestation object outside this service): format `packed`, one
 * self-signed "Batch Certificate" (O=Chromium) in x5c, and this AAGUID in the
 * authenticator data. A U2F virtual key answers `fido-u2f` with the all-zero
 * AAGUID. With attestation `none` it answers format `none`.
 */
export const VIRTUAL_AUTHENTICATOR_AAGUID = '01020304-0506-0708-0102-030405060708';

/**
 * A browser tab showing the test page, with a CDP virtual authenticator
 * plugged in. The authenticator belongs to the tab, not to the page: it keeps
 * its credentials across navigations. A tab costs a renderer process (about a
 * second on a busy machine); `plugInNewKey` gives a test a blank key for a few
 * milliseconds instead.
 */
export class SecurityKeyTab {
  private constructor(
    readonly context: BrowserContext,
    readonly page: Page,
    readonly cdp: CDPSession,
    private currentAuthenticatorId: string,
  ) {}

  static async open(browser: Browser, url: string): Promise<SecurityKeyTab> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: SECURITY_KEY,
    });
    const tab = new SecurityKeyTab(context, page, cdp, authenticatorId);
    await tab.goto(url);
    return tab;
  }

  get authenticatorId(): string {
    return this.currentAuthenticatorId;
  }

  /**
   * Unplugs the current authenticator (its credentials go with it) and plugs in a blank one:
   * a CTAP2 security key unless `options` say otherwise (e.g. U2F_SECURITY_KEY).
   */
  async plugInNewKey(
    options: Protocol.WebAuthn.VirtualAuthenticatorOptions = SECURITY_KEY,
  ): Promise<void> {
    await this.cdp.send('WebAuthn.removeVirtualAuthenticator', {
      authenticatorId: this.currentAuthenticatorId,
    });
    const { authenticatorId } = await this.cdp.send('WebAuthn.addVirtualAuthenticator', {
      options,
    });
    this.currentAuthenticatorId = authenticatorId;
  }

  /** Puts a credential into the authenticator (a copy of another key's, say). */
  async addCredential(credential: VirtualCredential): Promise<void> {
    await this.cdp.send('WebAuthn.addCredential', {
      authenticatorId: this.currentAuthenticatorId,
      credential,
    });
  }

  /** Loads the test page at `url`; the library is there once it has loaded. */
  async goto(url: string): Promise<void> {
    const response = await this.page.goto(url);
    if (!response?.ok()) throw new Error(`The test page did not load from ${url}`);
    const loaded = await this.page.evaluate(() => 'SimpleWebAuthnBrowser' in globalThis);
    if (!loaded) throw new Error(`@simplewebauthn/browser did not load into ${url}`);
  }

  /** Shows the page at `url`, navigating only when the tab is elsewhere. */
  async show(url: string): Promise<void> {
    if (this.page.url() !== url) await this.goto(url);
  }

  /** Whether the page is a secure context (WebAuthn is only there in one). */
  isSecureContext(): Promise<boolean> {
    return this.page.evaluate(() => (globalThis as any).isSecureContext === true);
  }

  /** `startRegistration({ optionsJSON })` in the page. */
  tryRegister(
    optionsJSON: PublicKeyCredentialCreationOptionsJSON,
  ): Promise<CeremonyResult<RegistrationResponseJSON>> {
    return this.page.evaluate(async (options) => {
      try {
        const lib = (globalThis as any).SimpleWebAuthnBrowser;
        return {
          ok: true as const,
          response: await lib.startRegistration({ optionsJSON: options }),
        };
      } catch (error) {
        const { name, message } = error as Error;
        return { ok: false as const, name, message };
      }
    }, optionsJSON);
  }

  /** `startAuthentication({ optionsJSON })` in the page. */
  tryAuthenticate(
    optionsJSON: PublicKeyCredentialRequestOptionsJSON,
  ): Promise<CeremonyResult<AuthenticationResponseJSON>> {
    return this.page.evaluate(async (options) => {
      try {
        const lib = (globalThis as any).SimpleWebAuthnBrowser;
        return {
          ok: true as const,
          response: await lib.startAuthentication({ optionsJSON: options }),
        };
      } catch (error) {
        const { name, message } = error as Error;
        return { ok: false as const, name, message };
      }
    }, optionsJSON);
  }

  async register(
    optionsJSON: PublicKeyCredentialCreationOptionsJSON,
  ): Promise<RegistrationResponseJSON> {
    return succeeded('startRegistration', await this.tryRegister(optionsJSON));
  }

  async authenticate(
    optionsJSON: PublicKeyCredentialRequestOptionsJSON,
  ): Promise<AuthenticationResponseJSON> {
    return succeeded('startAuthentication', await this.tryAuthenticate(optionsJSON));
  }

  /** The authenticator's credentials, with their signature counters and private keys. */
  async credentials(): Promise<VirtualCredential[]> {
    const { credentials } = await this.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: this.currentAuthenticatorId,
    });
    return credentials;
  }

  /** The authenticator's credential with this (base64url) id. */
  async credential(credentialIdBase64Url: string): Promise<VirtualCredential> {
    const found = (await this.credentials()).find(
      (credential) => base64url(credential.credentialId) === credentialIdBase64Url,
    );
    if (!found) throw new Error(`The authenticator holds no credential ${credentialIdBase64Url}`);
    return found;
  }

  close(): Promise<void> {
    return this.context.close();
  }
}

/** CDP's standard base64 as the base64url WebAuthn JSON uses. */
export function base64url(base64: string): string {
  return Buffer.from(base64, 'base64').toString('base64url');
}

function succeeded<T>(ceremony: string, result: CeremonyResult<T>): T {
  if (!result.ok)
    throw new Error(`${ceremony} failed in the browser: ${result.name}: ${result.message}`);
  return result.response;
}
