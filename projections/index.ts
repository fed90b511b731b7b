import { corporationsProjection } from './corporations.projection';
import { enrolledUsersProjection } from './enrolled-users.projection';
import { failedEmailsProjection } from './failed-emails.projection';
import { licenseUsageProjection } from './license-usage.projection';
import { mailDirectoryProjection } from './mail-directory.projection';
import type { Projection } from '../src/projection-engine/projection';
import { roleCountersProjection } from './role-counters.projection';
import { seatRepairsProjection } from './seat-repairs.projection';
import { usageHistoryProjection } from './usage-history.projection';

/** Every read model the service keeps. */
export const ALL_PROJECTIONS: readonly Projection[] = [
  enrolledUsersProjection,
  roleCountersProjection,
  licenseUsageProjection,
  usageHistoryProjection,
  corporationsProjection,
  mailDirectoryProjection,
  seatRepairsProjection,
  failedEmailsProjection,
];
