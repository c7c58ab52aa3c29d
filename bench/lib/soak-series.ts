// What bench/soak.ts samples from outside a running node, and how it judges a trend:
//   - /metrics (protocol 1.1), when the node serves it: V8 heap used and event-loop lag, read from prom-client's
//     default metrics with or without the agentmesh_ prefix;
//   - a least-squares line through a series after warm-up: its slope per minute, and whether slope × span is more
//     than a tenth of the series' mean (the run's "trends upward").

export interface MetricsSample {
  heapUsedMiB?: number;
  loopLagMs?: number;
}

function metric(text: string, name: string): number | undefined {
  // `name` or `agentmesh_name`, labels optional, then the value.
  const match = new RegExp(`^(?:agentmesh_)?${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)`, 'm').exec(text);
  if (!match) return undefined;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value : undefined;
}

/** Reads GET /metrics; {} when the node has no such route or it does not carry these metrics. */
export async function readMetrics(nodeUrl: string): Promise<MetricsSample> {
  try {
    const res = await fetch(`${nodeUrl}/metrics`);
    const text = await res.text();
    if (res.status !== 200) return {};
    const heap = metric(text, 'nodejs_heap_size_used_bytes');
    const lag = metric(text, 'nodejs_eventloop_lag_p99_seconds') ?? metric(text, 'nodejs_eventloop_lag_seconds');
    return {
      ...(heap !== undefined ? { heapUsedMiB: heap / 2 ** 20 } : {}),
      ...(lag !== undefined ? { loopLagMs: lag * 1000 } : {}),
    };
  } catch {
    return {};
  }
}

export interface Point {
  /** Minutes since the run started. */
  t: number;
  value: number;
}

export interface Trend {
  samples: number;
  mean: number;
  /** Units per minute. */
  slope: number;
  /** slope × the span of the points, as a percentage of the mean. */
  growthPct: number;
  upward: boolean;
}

/** The least-squares line through the points; upward when it rises by more than 10 % of the mean over their span. */
export function trend(points: Point[]): Trend {
  const n = points.length;
  const mean = points.reduce((s, p) => s + p.value, 0) / n;
  const tMean = points.reduce((s, p) => s + p.t, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - tMean) * (p.value - mean);
    den += (p.t - tMean) ** 2;
  }
  const slope = den > 0 ? num / den : 0;
  const span = n > 0 ? points[n - 1]!.t - points[0]!.t : 0;
  const growthPct = mean !== 0 ? ((slope * span) / Math.abs(mean)) * 100 : 0;
  return { samples: n, mean, slope, growthPct, upward: growthPct > 10 };
}

/** The p-th percentile of a list (NaN when empty). */
export function pct(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
