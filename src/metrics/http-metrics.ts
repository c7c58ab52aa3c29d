import type { RequestHandler } from 'express';
import { Counter, Histogram, type Registry } from 'prom-client';

/** Latency buckets in seconds: from a cached GET (well under 1 ms) to a long poll held 30 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The label of a request no route matched: raw paths would let any client mint series at will. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Requests by method, route pattern and status, with their latency. The route is express's pattern
 * (`/agents/:id`), so label values are bounded by the routes the node has, not by the paths clients send.
 */
export function httpMetrics(registry: Registry): RequestHandler {
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({
    name: 'agentmesh_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status ("aborted": the client left first)',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'agentmesh_http_request_duration_seconds',
    help: 'Time from a request reaching express to its answer being handed to the socket, by method, route and status',
    labelNames,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });

  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('close', () => {
      // req.route is the matched route (kept through error handling); baseUrl is the mount point of its router.
      const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : UNMATCHED_ROUTE;
      const status = res.writableFinished ? String(res.statusCode) : 'aborted';
      const labels = { method: req.method, route, status };
      requests.inc(labels);
      duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  };
}
