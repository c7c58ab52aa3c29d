import { health, peers, type Health, type Peer } from './api.js';
import { fact, h, text } from './dom.js';
import { timeElement } from './time.js';
import type { View } from './view.js';

const REFRESH_MS = 3000;
/** The node's live link to the peer (`live_link`: connecting, open or backoff; null when it keeps none). */
function liveLink(peer: Peer): string {
  const value = peer['live_link'];
  return typeof value === 'string' ? value : 'no';
}

/** Whether the node follows the peer (`followed`, 1.2): pulls its full stream, or only checks it now and then. */
function followed(peer: Peer): string {
  const value = peer['followed'];
  return value === true ? 'followed' : value === false ? 'passive' : '—';
}

function peerRow(peer: Peer, withLive: boolean): HTMLElement {
  return h(
    'tr',
    {},
    h('th', { scope: 'row' }, h('code', {}, peer.url)),
    h('td', { 'data-label': 'Source' }, text(peer.source)),
    h('td', { 'data-label': 'Following' }, followed(peer)),
    h('td', { 'data-label': 'Node id' }, peer.node_id ? h('code', { class: 'breakable' }, peer.node_id) : 'not yet seen'),
    h('td', { 'data-label': 'Last success' }, timeElement(peer.last_success_at)),
    h('td', { 'data-label': 'Failures', class: peer.failures > 0 ? 'warn' : undefined }, String(peer.failures)),
    withLive ? h('td', { 'data-label': 'Live link' }, liveLink(peer)) : null,
    h('td', { 'data-label': 'Last error', class: 'breakable' }, text(peer.last_error) || '—'),
  );
}

/** This node's identity and counts, and its peer table, redrawn every few seconds. */
export function meshView(main: HTMLElement): View {
  const heading = h('h1', { tabindex: '-1', id: 'mesh-title' }, 'Mesh');
  const summary = h('dl', { class: 'facts summary' });
  const table = h('div', { class: 'table-wrap' });
  const status = h('p', { class: 'hint', role: 'status' });
  main.replaceChildren(
    h(
      'section',
      { class: 'mesh', 'aria-labelledby': 'mesh-title' },
      heading,
      summary,
      h('section', { 'aria-labelledby': 'peers-title' }, h('h2', { id: 'peers-title' }, 'Peers'), h('p', { class: 'hint' }, `Refreshed every ${REFRESH_MS / 1000} s.`), table, status),
    ),
  );
  heading.focus();
  let disposed = false;

  function draw(node: Health, rows: Peer[]): void {
    summary.replaceChildren(
      ...fact('This node', h('code', { class: 'breakable', id: 'node-id' }, node.node_id)),
      ...fact('Live agents', String(node.agents)),
      ...fact('Peers', String(node.peers)),
    );
    const withLive = rows.some((p) => 'live_link' in p);
    if (rows.length === 0) {
      table.replaceChildren(h('p', {}, 'This node has no peers yet: give it seeds (--seeds), or let other nodes pull from it.'));
      return;
    }
    const headers = ['Peer', 'Source', 'Following', 'Node id', 'Last success', 'Failures', ...(withLive ? ['Live link'] : []), 'Last error'];
    table.replaceChildren(
      h(
        'table',
        { class: 'peers' },
        h('caption', { class: 'visually-hidden' }, 'Peers of this node'),
        h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, ...rows.map((p) => peerRow(p, withLive))),
      ),
    );
  }

  async function load(): Promise<void> {
    try {
      const [node, list] = await Promise.all([health(), peers()]);
      if (disposed) return;
      draw(node, list.peers);
      status.textContent = '';
    } catch (error) {
      if (!disposed) status.textContent = `The node could not be asked: ${String(error)}`;
    }
  }

  void load();
  const timer = setInterval(() => void load(), REFRESH_MS);
  return {
    refresh: () => void load(),
    dispose: () => {
      disposed = true;
      clearInterval(timer);
    },
  };
}
