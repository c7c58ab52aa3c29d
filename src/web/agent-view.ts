import { agent, ApiError, receipt, type Card, type Receipt } from './api.js';
import { chips, fact, fill, h, text } from './dom.js';
import { timeElement } from './time.js';
import type { View } from './view.js';

/** Members shown in their own places; any other member is listed as JSON under "Other members". */
const KNOWN = new Set(['id', 'public_key', 'updated_at', 'manifest_signature', 'name', 'version', 'endpoint', 'protocol', 'description', 'skills', 'tags', 'capabilities', 'models', 'deleted']);

function skillsTable(card: Card): HTMLElement {
  const skills = card.skills ?? [];
  if (skills.length === 0) return h('p', {}, 'No skills listed.');
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('caption', { class: 'visually-hidden' }, 'Skills'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Skill'), h('th', { scope: 'col' }, 'Description'), h('th', { scope: 'col' }, 'Tags'))),
      h('tbody', {}, ...skills.map((s) => h('tr', {}, h('th', { scope: 'row' }, text(s.name)), h('td', {}, text(s.description)), h('td', {}, chips('Skill tags', s.tags))))),
    ),
  );
}

function knowledge(held: Receipt | null): HTMLElement {
  if (!held) return h('p', {}, 'Unknown.');
  const from = held.received_from === 'client' ? 'a client of this node (POST /agents)' : h('span', {}, 'the peer ', h('code', {}, held.received_from));
  return h(
    'dl',
    { class: 'facts wide' },
    fact('Received from', from),
    fact('Received at', timeElement(held.received_at), ' (', new Date(held.received_at).toLocaleString(), ')'),
    fact('Change stamp', String(held.changed_at)),
    fact('State', held.deleted ? 'deleted (a tombstone is held)' : 'live'),
  );
}

function cardDetails(card: Card): HTMLElement {
  const updated = Date.parse(card.updated_at);
  const others = Object.keys(card).filter((k) => !KNOWN.has(k));
  return h(
    'dl',
    { class: 'facts wide' },
    fact('Id', h('code', {}, card.id)),
    fact('Public key', h('code', {}, card.public_key)),
    fact('Version', card.version),
    fact('Protocol', card.protocol ?? 'a2a'),
    fact('Endpoint', card.endpoint ? h('code', {}, card.endpoint) : null),
    fact('Signed at', text(card.updated_at), ' (', timeElement(Number.isNaN(updated) ? null : updated), ')'),
    fact('Tags', chips('Tags', card.tags)),
    fact('Capabilities', chips('Capabilities', card.capabilities)),
    fact('Models', chips('Models', card.models)),
    fact('Signature', h('code', { class: 'breakable' }, card.manifest_signature)),
    ...others.map((k) => fact(k, h('code', { class: 'breakable' }, JSON.stringify(card[k])))),
  );
}

/** One agent at its own URL (#/agents/<id>): every member, its skills, the signed card, and how it came here. */
export function agentView(main: HTMLElement, id: string, backHref: string): View {
  const heading = h('h1', { tabindex: '-1', id: 'agent-title' }, 'Agent');
  const body = h('div', { class: 'agent-body', 'aria-live': 'polite', 'aria-busy': 'true' }, h('p', {}, 'Loading…'));
  main.replaceChildren(h('article', { class: 'agent', 'aria-labelledby': 'agent-title' }, h('p', { class: 'back' }, h('a', { href: backHref }, '← Back to search')), heading, body));
  heading.focus();
  let disposed = false;
  /** The change stamp shown: a live refresh redraws only when this agent itself changed. */
  let shownStamp: number | undefined;

  async function load(): Promise<void> {
    const [card, held] = await Promise.allSettled([agent(id), receipt(id)]);
    if (disposed) return;
    const stamp = held.status === 'fulfilled' ? held.value.changed_at : undefined;
    if (shownStamp !== undefined && stamp === shownStamp) return;
    shownStamp = stamp;
    body.setAttribute('aria-busy', 'false');
    const meta = held.status === 'fulfilled' ? held.value : null;
    if (card.status === 'rejected') {
      const error = card.reason;
      const gone = error instanceof ApiError && error.status === 410;
      heading.textContent = gone ? 'Deleted agent' : 'Agent not found';
      fill(body, 
        h('p', {}, gone ? 'This agent was deleted: its owner signed a tombstone.' : error instanceof ApiError && error.status === 404 ? 'No agent with this id is known to this node.' : `The node could not be asked: ${String(error)}`),
        h('p', {}, h('code', { class: 'breakable' }, id)),
        gone ? h('section', { 'aria-labelledby': 'k-title' }, h('h2', { id: 'k-title' }, 'What this node knows'), knowledge(meta)) : null,
      );
      return;
    }
    const c = card.value;
    heading.textContent = text(c.name) || c.id;
    fill(body, 
      c.description ? h('p', { class: 'description lead' }, c.description) : null,
      h('section', { 'aria-labelledby': 'card-title' }, h('h2', { id: 'card-title' }, 'Card'), cardDetails(c)),
      h('section', { 'aria-labelledby': 'skills-title' }, h('h2', { id: 'skills-title' }, 'Skills'), skillsTable(c)),
      h('section', { 'aria-labelledby': 'k-title' }, h('h2', { id: 'k-title' }, 'What this node knows'), knowledge(meta)),
      h('section', { 'aria-labelledby': 'json-title' }, h('h2', { id: 'json-title' }, 'Signed card (JSON)'), h('pre', { class: 'json', tabindex: '0', 'aria-label': 'Signed card as JSON' }, JSON.stringify(c, null, 2))),
    );
  }

  void load();
  return {
    refresh: () => void load(),
    dispose: () => {
      disposed = true;
    },
  };
}
