/**
 * The roles of the host's users (DESIGN §1): the vocabulary every slice
 * shares. The directory registers users with them; the enablement switches
 * and the dashboards count by them.
 */
export const USER_ROLES = [
  'case-manager',
  'vendor-case-manager',
  'corp-user',
  'foreign-national',
] as const;
export type UserRole = (typeof USER_ROLES)[number];
