import { Router, type Request } from 'express';
import type { Logger } from 'pino';
import { DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, MAX_PULL_WAIT_MS, ServingOverloaded, type PullServer } from '../federation/pull.js';
import { normalizePeerUrl } from '../federation/peer-url.js';
import type { PeerRow, Store } from '../store/index.js';
import { ApiError } from './errors.js';
import { decimalParam, singleParam } from './query.js';
import { DIGEST_CHARS, DIGEST_RUN, splitDigests } from '../card/digest.js';
import { joined, PROTOCOL_NAME } from '../federation/pull-page.js';

export interface FederationRouterOptions {
  store: Store;
  pulls: PullServer;
  publicUrl: string | undefined;
  logger: Logger;
  /** Told when a pull announced a peer not known before (the sync worker pulls it at once). */
  onPeerLearned?: (url: string) => void;
  /** Told of every pull that announced a peer in the table (it follows us: followed back while there is room). */
  onPeerAnnounced?: (url: string) => void;
  /** The peers this node follows (PROTOCOL.md 1.2 section 7.1): shown in each peer row as `followed`. */
  followedPeers?: () => readonly string[];
  /** The follower's live links (held long polls) by peer URL: shown in each peer row as `live_link`. */
  liveLinks?: () => ReadonlyArray<{ url: string; state: string }>;
  /** The mode of each followed peer's link (1.2 section 7.2): shown in each peer row as `link_mode`. */
  linkModes?: () => ReadonlyMap<string, string>;
  /** A follower recorded as itself told, opening a feed, that it pruned (lazy) or grafted (eager) its link to us (1.2 section 7.2). */
  onFollowerSwitch?: (url: string, mode: 'eager' | 'lazy') => void;
}

function describePeer(row: PeerRow, liveLink: string | undefined, followed: boolean, linkMode: string | undefined) {
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
    // 1.2: whether this node follows the peer (pulls its full stream); the others are passive, checked now and then.
    followed,
    // 1.2: 'eager' (cards) or 'lazy' (digests) for a followed peer (section 7.2), null otherwise.
    link_mode: followed ? (linkMode ?? null) : null,
  };
}

/** `feed` (PROTOCOL.md 1.2 section 6.1): `normal` or `longpoll` (the 1.1 answer, held when `wait` says so) or `continuous`. */
function feedParam(req: Request): boolean {
  const feed = singleParam(req, 'feed');
  if (feed === undefined || feed === 'normal' || feed === 'longpoll') return false;
  if (feed === 'continuous') return true;
  throw new ApiError(400, 'invalid_query', 'feed must be normal, longpoll or continuous');
}

/** Digests a fetch may name (section 6.2): a page of lazy-link entries fits in a few requests, each URL under 1 KB. */
export const MAX_FETCH_DIGESTS = 64;

/** A failing peer that announces itself is tried again at most this often. */
const EXPEDITE_GAP_MS = 1_000;

export function federationRouter({ store, pulls, publicUrl, logger, onPeerLearned, onPeerAnnounced, followedPeers, liveLinks, linkModes, onFollowerSwitch }: FederationRouterOptions): Router {
  const router = Router();

  router.get('/federation/pull', async (req, res) => {
    const since = decimalParam(req, 'since', 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = decimalParam(req, 'limit', 1, MAX_PULL_LIMIT, DEFAULT_PULL_LIMIT);
    const waitMs = decimalParam(req, 'wait', 0, MAX_PULL_WAIT_MS, 0);
    const continuous = feedParam(req);
    const digests = decimalParam(req, 'digests', 0, 1, 0) === 1;
    // Compressed only when asked: a client that sends no Accept-Encoding gets the plain text.
    const gzip = req.get('accept-encoding') !== undefined && req.acceptsEncodings('gzip', 'identity') === 'gzip';
    const announced = recordAnnouncedPeer(req.get('x-agentmesh-node-url'));
    const follower = echoFilter(announced, req.get('x-agentmesh-node-id'));
    // A switch is told with a feed in its new mode (a prune with digests, a graft with cards); any other is ignored.
    const told = req.get('x-agentmesh-link-switch');
    if (continuous && follower !== undefined && told === (digests ? 'prune' : 'graft')) onFollowerSwitch?.(follower, digests ? 'lazy' : 'eager');
    try {
      await pulls.answer({ since, limit, waitMs, gzip, follower, continuous, digests }, res);
    } catch (error) {
      if (!(error instanceof ServingOverloaded)) throw error;
      res.set('Retry-After', '1');
      throw new ApiError(503, 'unavailable', error.message);
    }
  });

  /**
   * Fetch by digest (PROTOCOL.md 1.2 section 6.2): the cards this node holds now whose version has one of the given
   * digests, as a lazy link's follower asks for what it lacks. A digest of a version no longer held is left out.
   */
  router.get('/federation/cards', (req, res) => {
    const run = singleParam(req, 'digests') ?? '';
    if (run.length === 0 || run.length > MAX_FETCH_DIGESTS * DIGEST_CHARS || run.length % DIGEST_CHARS !== 0 || !DIGEST_RUN.test(run)) {
      throw new ApiError(400, 'invalid_query', `digests must be 1 to ${MAX_FETCH_DIGESTS} digests of ${DIGEST_CHARS} base64url characters, nothing between`);
    }
    const cards = store.agents.byDigests(splitDigests(run));
    const head = `{"protocol":"${PROTOCOL_NAME}","node_id":${JSON.stringify(store.nodeId)},"agents":[`;
    const body = joined(head, cards.map((card) => card.canonical), ',', ']}', '').encode();
    res.status(200).type('application/json').send(body);
  });

  router.get('/federation/peers', async (_req, res) => {
    const links = new Map((liveLinks?.() ?? []).map((link) => [link.url, link.state]));
    const followed = new Set(followedPeers?.() ?? []);
    const modes = linkModes?.() ?? new Map<string, string>();
    res.status(200).json({ peers: (await store.peers.list()).map((row) => describePeer(row, links.get(row.url), followed.has(row.url), modes.get(row.url))) });
  });

  /**
   * No echoes (PROTOCOL.md 1.2 section 6): the versions this node pulled from the follower's URL are left out of its
   * pages, but only when the follower is the node recorded there (its node id): a node whose database was replaced
   * behind the same URL lacks them, and gets them.
   */
  function echoFilter(url: string | undefined, nodeId: string | undefined): string | undefined {
    if (url === undefined || nodeId === undefined) return undefined;
    const recorded = store.peers.get(url)?.node_id;
    return recorded !== null && recorded !== undefined && recorded === nodeId ? url : undefined;
  }

  /**
   * A node that pulls from us and has a public URL becomes a candidate peer: unverified until it answers us.
   * Returns the announced URL, normalised, when it is a valid one other than ours.
   */
  function recordAnnouncedPeer(header: string | undefined): string | undefined {
    if (header === undefined) return undefined;
    const url = normalizePeerUrl(header);
    if (url === null || url === publicUrl) return undefined;
    if (store.peers.get(url)) {
      // A known peer backing off has just shown it is up (it pulls from us): it is tried again now, not at the end
      // of its backoff, e.g. the other node of a pair that started first. At most once per EXPEDITE_GAP_MS a row,
      // so an announcement cannot make this node connect somewhere at a stranger's pace.
      const now = Date.now();
      const expedited = store.write(() => store.peers.expedite(url, now, EXPEDITE_GAP_MS));
      onPeerAnnounced?.(url);
      if (expedited) onPeerLearned?.(url);
      return url;
    }
    const added = store.write(() => store.peers.addCandidates([url], 'announced', Date.now()));
    if (added > 0) {
      logger.info({ url }, 'announced peer recorded as candidate');
      onPeerAnnounced?.(url);
      onPeerLearned?.(url);
    }
    return url;
  }

  return router;
}
