import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Router, type Response } from 'express';
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import { ApiError } from './errors.js';

/**
 * The page at / (src/web): index.html and app.css as written, and the compiled TypeScript modules. Run from the
 * build (dist/src/http), the modules are dist/web/*.js, compiled by `npm run build`; run from the sources (tests,
 * tsx), each module is transpiled from src/web/*.ts on first request with the project's own TypeScript (a dev
 * dependency, loaded only then) and kept in memory, so the tests always exercise the current sources.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const FROM_SOURCES = import.meta.url.endsWith('.ts');
const PROJECT_ROOT = fileURLToPath(new URL(FROM_SOURCES ? '../../' : '../../../', import.meta.url));
const SOURCE_DIR = `${PROJECT_ROOT}src/web/`;
const BUILD_DIR = `${PROJECT_ROOT}dist/web/`;
const MODULE_NAME = /^[a-z][a-z-]{0,40}\.js$/;

export interface WebRouterOptions {
  store: Store;
  logger: Logger;
}

function secure(res: Response): Response {
  return res
    .set('Content-Security-Policy', CONTENT_SECURITY_POLICY)
    .set('X-Content-Type-Options', 'nosniff')
    .set('Referrer-Policy', 'no-referrer')
    .set('Cache-Control', 'no-cache');
}

async function transpile(source: string): Promise<string> {
  const ts = (await import('typescript')).default;
  return ts.transpileModule(source, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, verbatimModuleSyntax: true },
  }).outputText;
}

export function webRouter({ store, logger }: WebRouterOptions): Router {
  const router = Router();
  const modules = new Map<string, Promise<string | undefined>>();
  const log = logger.child({ part: 'web' });

  /** A module of the page, or undefined when there is none of that name. */
  function loadModule(name: string): Promise<string | undefined> {
    let loaded = modules.get(name);
    if (!loaded) {
      const base = name.slice(0, -'.js'.length);
      loaded = FROM_SOURCES
        ? existsSync(`${SOURCE_DIR}${base}.ts`)
          ? transpile(readFileSync(`${SOURCE_DIR}${base}.ts`, 'utf8'))
          : Promise.resolve(undefined)
        : Promise.resolve(existsSync(`${BUILD_DIR}${name}`) ? readFileSync(`${BUILD_DIR}${name}`, 'utf8') : undefined);
      loaded.catch((error: unknown) => log.error({ err: error, name }, 'page module failed to load'));
      modules.set(name, loaded);
    }
    return loaded;
  }

  router.get('/', (_req, res) => {
    secure(res).status(200).type('text/html; charset=utf-8').send(readFileSync(`${SOURCE_DIR}index.html`, 'utf8'));
  });

  router.get('/web/app.css', (_req, res) => {
    secure(res).status(200).type('text/css; charset=utf-8').send(readFileSync(`${SOURCE_DIR}app.css`, 'utf8'));
  });

  router.get('/web/:name', async (req, res) => {
    const name = req.params.name;
    const code = MODULE_NAME.test(name) ? await loadModule(name) : undefined;
    if (code === undefined) throw new ApiError(404, 'not_found', 'no such file of the page');
    secure(res).status(200).type('text/javascript; charset=utf-8').send(code);
  });

  // Node-specific reads for the page, beside the protocol's routes (GET /agents/{id} stays exactly as specified).
  router.get('/node/agents/:id', (req, res) => {
    const receipt = store.agents.receipt(req.params.id);
    if (!receipt) throw new ApiError(404, 'not_found', 'no agent with this id is known here');
    res.status(200).json({
      id: receipt.id,
      deleted: receipt.deleted,
      updated_at: receipt.updatedAt,
      changed_at: receipt.changedAt,
      received_from: receipt.receivedFrom,
      received_at: receipt.receivedAt,
    });
  });

  router.get('/node/head', (_req, res) => {
    res.status(200).json({ change_stamp: store.agents.headStamp() });
  });

  return router;
}
