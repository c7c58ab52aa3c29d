// The page at /: hash routes (#/ search, #/agents/<id> one agent, #/mesh the mesh), so every view has its own
// shareable URL and the API routes stay JSON-only.
import { agentView } from './agent-view.js';
import { followChanges } from './live.js';
import { meshView } from './mesh-view.js';
import { searchView } from './search-view.js';
import type { View } from './view.js';

const main = document.getElementById('main') as HTMLElement;
const liveStatus = document.getElementById('live-status') as HTMLElement;
let current: View | undefined;
let firstView = true;
let lastSearch = '#/';

/** Live refreshes come at most once a second, however busy the node. */
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
function refreshSoon(): void {
  refreshTimer ??= setTimeout(() => {
    refreshTimer = undefined;
    current?.refresh();
  }, 1000);
}

function route(): void {
  current?.dispose();
  const hash = location.hash || '#/';
  let section: 'search' | 'mesh' | 'agent';
  if (hash.startsWith('#/agents/')) {
    section = 'agent';
    let id = hash.slice('#/agents/'.length);
    try {
      id = decodeURIComponent(id);
    } catch {
      // Not percent-encoding: look it up as typed; the node answers 404.
    }
    current = agentView(main, id, lastSearch);
  } else if (hash === '#/mesh') {
    section = 'mesh';
    current = meshView(main);
  } else {
    section = 'search';
    const query = hash.indexOf('?');
    current = searchView(main, new URLSearchParams(query >= 0 ? hash.slice(query + 1) : ''), firstView);
  }
  for (const link of document.querySelectorAll<HTMLAnchorElement>('nav a[data-nav]')) {
    if (link.dataset.nav === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${section === 'search' ? 'Search' : section === 'mesh' ? 'Mesh' : 'Agent'} · AgentMesh node`;
  firstView = false;
}

// The search view keeps its query in the URL without a hashchange: remember it when leaving for an agent.
window.addEventListener('hashchange', (event) => {
  const from = new URL(event.oldURL).hash || '#/';
  if (!from.startsWith('#/agents/') && from !== '#/mesh') lastSearch = from;
  route();
});
document.getElementById('skip')?.addEventListener('click', (event) => {
  event.preventDefault();
  (main.querySelector<HTMLElement>('h1') ?? main).focus();
});
route();
followChanges(refreshSoon, (status) => (liveStatus.textContent = status));
