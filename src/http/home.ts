import type { RequestHandler } from 'express';

// A plain page for people who open the node in a browser; it names the machine-readable routes. No script, and a
// policy that allows none, so nothing on it can run.
const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>AgentMesh node</title></head>
<body>
<h1>AgentMesh registry node</h1>
<ul>
<li><a href="/agents">/agents</a>: search the agents this node holds</li>
<li><a href="/health">/health</a>: readiness and counts</li>
<li><a href="/federation/peers">/federation/peers</a>: the peers this node pulls from</li>
<li><a href="/openapi.json">/openapi.json</a>: the API, described in OpenAPI 3.1</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
</ul>
</body>
</html>
`;

export const homePage: RequestHandler = (_req, res) => {
  res
    .status(200)
    .set('Content-Security-Policy', "default-src 'none'")
    .type('text/html')
    .send(PAGE);
};
