import type { QueuedEmail } from './notifications.decider';

/*
 * The words of each email. Rendered from the queued event alone (and the
 * sender address), so a message sent again after a crash is the same message:
 * same Message-ID, same Date, same text.
 */

export interface RenderedEmail {
  messageId: string;
  from: string;
  to: { name: string; address: string };
  subject: string;
  text: string;
  html: string;
  date: Date;
  headers: Record<string, string>;
}

export const NOTIFICATION_HEADER = 'X-MFA-Notification';

/** `<uuid@domain>`, the domain taken from the sender address. */
export function messageIdHeader(messageId: string, from: string): string {
  const address = /<([^>]+)>/.exec(from)?.[1] ?? from;
  const domain = address.slice(address.lastIndexOf('@') + 1) || 'localhost';
  return `<${messageId}@${domain}>`;
}

export function renderEmail(
  firmId: string,
  email: QueuedEmail & { queuedAt: string },
  from: string,
): RenderedEmail {
  const { recipient } = email;
  const greeting = `Hello ${recipient.name},`;
  let subject: string;
  let paragraphs: string[];
  let figures: Array<[string, string]> = [];
  if (email.notification === 'enrollment-invitation') {
    subject = `Multi-factor authentication is now required for your account at firm ${firmId}`;
    paragraphs = [
      greeting,
      `Your firm (${firmId}) now requires multi-factor authentication (MFA) when you sign in.`,
      'What to do next: the next time you sign in, you will be asked to enroll a second factor. ' +
        'Have an authenticator app (for example on your phone) or a security key such as a YubiKey ' +
        'ready, follow the on-screen instructions to scan the QR code or register the key, and ' +
        'confirm with the code or touch it asks for. From then on every sign-in asks for that second factor.',
      'If you lose or change your device, ask your firm administrator to reset your MFA enrollment.',
    ];
  } else {
    const usage = email.usage;
    if (!usage) throw new Error(`A ${email.notification} email without usage figures`);
    const { threshold, licenseCount, seatsInUse, usagePercent } = usage;
    // The threshold crossed and the usage now can differ: one seat of one license crosses 80 %
    // and 100 % at once, and each email names its own threshold with the same figures.
    subject = `MFA license usage of firm ${firmId} reached ${threshold}%: ${seatsInUse} of ${licenseCount} in use`;
    const inUse =
      seatsInUse > licenseCount
        ? `${seatsInUse} seats are in use for its ${licenseCount} MFA licenses`
        : `${seatsInUse} of its ${licenseCount} MFA licenses are in use`;
    paragraphs = [
      greeting,
      `The MFA license usage of firm ${firmId} reached the ${threshold}% threshold: ${inUse} (${usagePercent}%).`,
      // DESIGN §3 "exhausted licenses": what all seats taken means for those not yet enrolled.
      seatsInUse >= licenseCount
        ? 'All MFA licenses are in use: users who are MFA-enabled but not yet enrolled cannot enroll, ' +
          'and sign in with a single factor until a license is free. To resume enrollments, ' +
          "increase the firm's subscribed MFA licenses."
        : 'When all of them are in use, users who are MFA-enabled but not yet enrolled will not be ' +
          "able to enroll. Consider increasing the firm's subscribed MFA licenses.",
      'You receive this email as a firm administrator or billing contact.',
    ];
    figures = [
      ['MFA license count', String(usage.licenseCount)],
      ['Seats in use (enrolled users)', String(usage.seatsInUse)],
      ['Unutilized MFA licenses', String(usage.unutilized)],
      ['Usage', `${usage.usagePercent}%`],
    ];
  }
  const text = [
    ...paragraphs.slice(0, 2),
    ...(figures.length > 0
      ? [figures.map(([label, value]) => `${label}: ${value}`).join('\n')]
      : []),
    ...paragraphs.slice(2),
  ].join('\n\n');
  const html = [
    '<!DOCTYPE html><html><body>',
    ...paragraphs.slice(0, 2).map((p) => `<p>${escapeHtml(p)}</p>`),
    ...(figures.length > 0
      ? [
          '<table>',
          ...figures.map(
            ([label, value]) =>
              `<tr><th align="left">${escapeHtml(label)}</th><td>${escapeHtml(value)}</td></tr>`,
          ),
          '</table>',
        ]
      : []),
    ...paragraphs.slice(2).map((p) => `<p>${escapeHtml(p)}</p>`),
    '</body></html>',
  ].join('\n');
  return {
    messageId: messageIdHeader(email.messageId, from),
    from,
    to: { name: recipient.name, address: recipient.email },
    subject,
    text: `${text}\n`,
    html: `${html}\n`,
    date: new Date(email.queuedAt),
    headers: { [NOTIFICATION_HEADER]: email.notification },
  };
}

function escapeHtml(value: string): string {
  return value.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}
