import type { Migration } from 'kysely';
import * as m001 from './001-init.js';
import * as m002 from './002-search.js';
import * as m003 from './003-live-count-and-fair-peers.js';
import * as m004 from './004-version-digests.js';

// Listed statically rather than read from the directory, so the same list works from TypeScript sources (tests)
// and from the compiled build (npm start). Add each new migration here under its file name.
export const migrations: Record<string, Migration> = {
  '001-init': m001,
  '002-search': m002,
  '003-live-count-and-fair-peers': m003,
  '004-version-digests': m004,
};
