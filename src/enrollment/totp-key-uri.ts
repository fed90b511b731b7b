/*
 * The otpauth URI an authenticator app scans (DESIGN §2.4), in the Key URI
 * format of Google Authenticator, which the other apps follow:
 *   otpauth://totp/LABEL?secret=SECRET&issuer=ISSUER
 *   LABEL = issuer ":" account, each part percent-encoded; the separator is a
 *   literal ":" (or "%3A"); the `issuer` parameter equals the label's prefix.
 * Apps split the decoded label at its first colon. The format allows no colon
 * in the issuer: an encoded one is still a colon once decoded, and "Acme:
 * Legal MFA" would read as issuer "Acme", account " Legal MFA:ann@…", while
 * the parameter says "Acme: Legal MFA"; some apps then file the account under
 * the wrong service. otplib's generateURI splits the whole label at every
 * colon and leaves those as separators, so the URI is built here.
 */

/**
 * The issuer as it appears in the URI, in both places: the relying-party
 * name without its colons, blanks squeezed ("Acme: Legal MFA" → "Acme Legal
 * MFA"). Removed rather than replaced by a look-alike character, which an app
 * may show oddly or a person may mistype when looking for the entry. Other
 * characters stay (a full-width "：" is no separator to the apps). The
 * WebAuthn relying-party name keeps the colon: only this format forbids it.
 */
export function keyUriIssuer(relyingPartyName: string): string {
  return relyingPartyName.replace(/:/g, ' ').replace(/\s+/g, ' ').trim();
}

/**
 * `otpauth://totp/<issuer>:<account>?secret=<secret>&issuer=<issuer>` for a
 * TOTP secret (SHA-1, 6 digits, 30 s: the defaults, so not written).
 *   issuer   the relying-party name; see keyUriIssuer. When nothing is left of
 *            it, the label is the account alone and no issuer is given.
 *   account  the user's email, kept whole: percent-encoded, so a colon in it
 *            (%3A) stays in the account when an app splits at the first colon.
 *   secret   base32, as the app expects it.
 */
export function totpKeyUri(options: { issuer: string; account: string; secret: string }): string {
  const issuer = keyUriIssuer(options.issuer);
  const account = encodeURIComponent(options.account);
  const label = issuer ? `${encodeURIComponent(issuer)}:${account}` : account;
  const params = [`secret=${encodeURIComponent(options.secret)}`];
  if (issuer) params.push(`issuer=${encodeURIComponent(issuer)}`);
  return `otpauth://totp/${label}?${params.join('&')}`;
}
