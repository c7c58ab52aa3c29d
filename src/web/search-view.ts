import { search, type Card, type SearchParams } from './api.js';
import { chips, fact, h, text } from './dom.js';
import { timeElement } from './time.js';
import { PROTOCOLS, type View } from './view.js';

const DEBOUNCE_MS = 200;
const PAGE = 20;
const FIELDS = ['q', 'protocol', 'tag', 'skill', 'sort'] as const;

function resultItem(card: Card): HTMLElement {
  const updated = Date.parse(card.updated_at);
  return h(
    'li',
    { class: 'result' },
    h(
      'article',
      { 'aria-labelledby': `r-${card.id}` },
      h('h2', { id: `r-${card.id}` }, h('a', { href: `#/agents/${encodeURIComponent(card.id)}`, 'data-id': card.id }, text(card.name) || card.id)),
      card.description ? h('p', { class: 'description' }, card.description) : null,
      chips('Skills', card.skills?.map((s) => s.name), 'skills'),
      chips('Tags', card.tags, 'tags'),
      h(
        'dl',
        { class: 'facts' },
        fact('Protocol', card.protocol ?? 'a2a'),
        fact('Endpoint', card.endpoint ? h('code', {}, card.endpoint) : null),
        fact('Changed', timeElement(Number.isNaN(updated) ? null : updated)),
      ),
    ),
  );
}

/** Search as you type: the query and filters live in the URL (#/?q=...), so a search can be shared. */
export function searchView(main: HTMLElement, initial: URLSearchParams, firstView: boolean): View {
  const q = h('input', { id: 'q', name: 'q', type: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. weather forecast', 'aria-describedby': 'q-hint' });
  const protocol = h('select', { id: 'protocol', name: 'protocol' }, h('option', { value: '' }, 'Any'), ...PROTOCOLS.map((p) => h('option', { value: p }, p)));
  const tag = h('input', { id: 'tag', name: 'tag', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const skill = h('input', { id: 'skill', name: 'skill', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const sort = h('select', { id: 'sort', name: 'sort' }, h('option', { value: '' }, 'Best match'), h('option', { value: 'recent' }, 'Most recent'));
  const controls = { q, protocol, tag, skill, sort };
  for (const name of FIELDS) controls[name].value = initial.get(name) ?? '';

  const status = h('p', { id: 'result-count', class: 'count', role: 'status', 'aria-live': 'polite' });
  const results = h('ol', { class: 'results', 'aria-label': 'Agents found' });
  const more = h('button', { type: 'button', class: 'more', hidden: true }, 'Show more agents');
  const heading = h('h1', { id: 'search-title', tabindex: '-1' }, 'Find agents');
  const form = h(
    'form',
    { role: 'search', 'aria-label': 'Agents' },
    h('div', { class: 'field query' }, h('label', { for: 'q' }, 'Search'), q, h('p', { id: 'q-hint', class: 'hint' }, 'Name, skills, tags and description; results appear as you type.')),
    h(
      'fieldset',
      { class: 'filters' },
      h('legend', {}, 'Filters'),
      h('div', { class: 'field' }, h('label', { for: 'protocol' }, 'Protocol'), protocol),
      h('div', { class: 'field' }, h('label', { for: 'tag' }, 'Tag (exact)'), tag),
      h('div', { class: 'field' }, h('label', { for: 'skill' }, 'Skill (exact name)'), skill),
      h('div', { class: 'field' }, h('label', { for: 'sort' }, 'Order'), sort),
    ),
  );
  main.replaceChildren(h('section', { class: 'search', 'aria-labelledby': 'search-title' }, heading, form, status, results, more));

  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: AbortController | undefined;
  let shown = 0;
  let cursor: string | null = null;

  const params = (): SearchParams => {
    const p: SearchParams = {};
    for (const name of FIELDS) if (controls[name].value.trim() !== '') p[name] = controls[name].value.trim();
    return p;
  };

  /** Runs the search; append=true fetches the next page, otherwise the first page replaces the list. */
  async function run(append = false, keepCount = false): Promise<void> {
    clearTimeout(timer);
    inFlight?.abort();
    const controller = (inFlight = new AbortController());
    const current = params();
    const url = new URLSearchParams(current as Record<string, string>).toString();
    history.replaceState(null, '', url ? `#/?${url}` : '#/');
    const limit = keepCount ? Math.min(500, Math.max(PAGE, shown)) : PAGE;
    try {
      const page = await search({ ...current, limit, ...(append && cursor ? { cursor } : {}) }, controller.signal);
      if (controller.signal.aborted) return;
      const focusedId = document.activeElement instanceof HTMLElement ? document.activeElement.dataset.id : undefined;
      if (!append) {
        results.replaceChildren();
        shown = 0;
      }
      for (const card of page.agents) results.appendChild(resultItem(card));
      shown += page.agents.length;
      cursor = page.next_cursor;
      more.hidden = cursor === null;
      const scope = current.q ? (current.sort === 'recent' ? 'most recent first' : 'best match first') : 'most recently changed first';
      status.textContent =
        shown === 0 ? 'No agents found.' : `${shown}${cursor ? '+' : ''} agent${shown === 1 ? '' : 's'} found, ${scope}.`;
      // A live refresh redraws the list: keep the keyboard where it was.
      if (focusedId) results.querySelector<HTMLElement>(`a[data-id="${CSS.escape(focusedId)}"]`)?.focus();
    } catch (error) {
      if (controller.signal.aborted) return;
      status.textContent = `Search failed: ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void run();
  });
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void run(), DEBOUNCE_MS);
  };
  for (const input of [q, tag, skill]) input.addEventListener('input', soon);
  for (const select of [protocol, sort]) select.addEventListener('change', () => void run());
  more.addEventListener('click', () => void run(true));

  void run();
  if (firstView) q.focus();
  else heading.focus();

  return {
    refresh: () => void run(false, true),
    dispose: () => {
      clearTimeout(timer);
      inFlight?.abort();
    },
  };
}
