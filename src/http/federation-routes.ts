import { Router } from 'express';
import type { Logger } from 'pino';
import { DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, MAX_PULL_WAIT_MS, ServingOverloaded, type PullServer } from '../federation/pull.js';
import { normalizePeerUrl } from '../federation/peer-url.js';
import type { PeerRow, Store } from '../store/index.js';
import { ApiError } from './errors.js';
import { decimalParam } from './query.js';

export interface FederationRouterOptions {
  store: Store;
  pulls: PullServer;
  publicUrl: string | undefined;
  logger: Logger;
  /** Told when a pull announced a peer not known before (the sync worker pulls it at once). */
  onPeerLearned?: (url: string) => void;
  /** The follower's live links (held long polls) by peer URL: shown in each peer row as `live_link`. */
  liveLinks?: () => ReadonlyArray<{ url: string; state: string }>;
}

function describePeer(row: PeerRow, liveLink: string | undefined) {
  return {
    url: row.url,
    source: row.source,
    node_id: row.node_id,
    high_water: row.high_water,
    last_success_at: row.last_success_at,
    failures: row.failures,
    // 0 in the table means "due at once, never scheduled": null, as the protocol gives times that never were.
    next_attempt_at: row.next_attempt_at === 0 ? null : row.next_attempt_at,
    last_error: row.last_error,
    // Beyond section 8's members (extra members are allowed): the live link's state, null when none is kept.
    live_link: liveLink ?? null,
  };
}

/** A failing peer that announces itself is tried again at most this often. */
const EXPEDITE_GAP_MS = 1_000;

export function federationRouter({ store, pulls, publicUrl, logger, onPeerLearned, liveLinks }: FederationRouterOptions): Router {
  const router = Router();

  router.get('/federation/pull', async (req, res) => {
    const since = decimalParam(req, 'since', 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = decimalParam(req, 'limit', 1, MAX_PULL_LIMIT, DEFAULT_PULL_LIMIT);
    const waitMs = decimalParam(req, 'wait', 0, MAX_PULL_WAIT_MS, 0);
    // Compressed only when asked: a client that sends no Accept-Encoding gets the plain text.
    const gzip = req.get('accept-encoding') !== undefined && req.acceptsEncodings('gzip', 'identity') === 'gzip';
    recordAnnouncedPeer(req.get('x-agentmesh-node-url'));
    try {
      await pulls.answer({ since, limit, waitMs, gzip }, res);
    } catch (error) {
      if (!(error instanceof ServingOverloaded)) throw error;
      res.set('Retry-After', '1');
      throw new ApiError(503, 'unavailable', error.message);
    }
  });

  router.get('/federation/peers', async (_req, res) => {
    const links = new Map((liveLinks?.() ?? []).map((link) => [link.url, link.state]));
    res.status(200).json({ peers: (await store.peers.list()).map((row) => describePeer(row, links.get(row.url))) });
  });

  /** A node that pulls from us and has a public URL becomes a candidate peer: unverified until it answers us. */
  function recordAnnouncedPeer(header: string | undefined): void {
    if (header === undefined) return;
    const url = normalizePeerUrl(header);
    if (url === null || url === publicUrl) return;
    if (store.peers.get(url)) {
      // A known peer backing off has just shown it is up (it pulls from us): it is tried again now, not at the end
      // of its backoff, e.g. the other node of a pair that started first. At most once per EXPEDITE_GAP_MS a row,
      // so an announcement cannot make this node connect somewhere at a stranger's pace.
      const now = Date.now();
      if (store.write(() => store.peers.expedite(url, now, EXPEDITE_GAP_MS))) onPeerLearned?.(url);
      return;
    }
    const added = store.write(() => store.peers.addCandidates([url], 'announced', Date.now()));
    if (added > 0) {
      logger.info({ url }, 'announced peer recorded as candidate');
      onPeerLearned?.(url);
    }
  }

  return router;
}
