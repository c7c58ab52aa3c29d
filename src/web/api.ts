// The node's HTTP API as the page uses it: the protocol's routes (PROTOCOL.md section 8) and two node-specific
// reads (GET /node/agents/{id}, GET /node/head). Same origin only.

export interface Skill {
  name: string;
  description?: string;
  tags?: string[];
}

/** A card as served: verified by the node, but every text in it is still someone else's input. */
export interface Card {
  id: string;
  public_key: string;
  updated_at: string;
  manifest_signature: string;
  name?: string;
  version?: string;
  endpoint?: string;
  protocol?: string;
  description?: string;
  skills?: Skill[];
  tags?: string[];
  capabilities?: string[];
  models?: string[];
  deleted?: boolean;
  [member: string]: unknown;
}

export interface SearchPage {
  agents: Card[];
  next_cursor: string | null;
}

export interface Receipt {
  id: string;
  deleted: boolean;
  updated_at: string;
  changed_at: number;
  received_from: string;
  received_at: number;
}

export interface Health {
  status: string;
  node_id: string;
  agents: number;
  peers: number;
}

export interface Peer {
  url: string;
  source: string;
  node_id: string | null;
  high_water: number;
  last_success_at: number | null;
  failures: number;
  next_attempt_at: number | null;
  last_error: string | null;
  [member: string]: unknown;
}

export interface PullPage {
  next_since: number;
  has_more: boolean;
  wait_max_ms?: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: { accept: 'application/json' }, signal });
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(res.status, error?.code ?? 'error', error?.message ?? `the node answered ${res.status}`);
  }
  return body as T;
}

export interface SearchParams {
  q?: string;
  protocol?: string;
  tag?: string;
  skill?: string;
  sort?: string;
  cursor?: string;
  limit?: number;
}

export function search(params: SearchParams, signal?: AbortSignal): Promise<SearchPage> {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') query.set(name, String(value));
  }
  return getJson(`/agents?${query}`, signal);
}

export const agent = (id: string) => getJson<Card>(`/agents/${encodeURIComponent(id)}`);
export const receipt = (id: string) => getJson<Receipt>(`/node/agents/${encodeURIComponent(id)}`);
export const health = () => getJson<Health>('/health');
export const peers = () => getJson<{ peers: Peer[] }>('/federation/peers');
export const head = () => getJson<{ change_stamp: number }>('/node/head');

/** One change at most: the page only needs to know that something was stored, and where the stream now ends. */
export function pull(since: number, waitMs: number, signal: AbortSignal): Promise<PullPage> {
  const wait = waitMs > 0 ? `&wait=${waitMs}` : '';
  return getJson(`/federation/pull?since=${since}&limit=1${wait}`, signal);
}
