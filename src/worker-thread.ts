import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker thread on the module `name` beside `callerUrl`: name.js once compiled. Under tsx (tests, benchmarks
 * from sources) the caller is a .ts file, and on Node 20 a worker's entry point does not pass through the
 * --import hooks, so a one-line bootstrap loads the .ts module through tsx's API instead.
 */
export function startModuleWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), options);
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  const bootstrap = `import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(callerUrl)}))`;
  return new Worker(bootstrap, { ...options, eval: true });
}
