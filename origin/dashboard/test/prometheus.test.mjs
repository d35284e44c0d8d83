// Unit tests of the dashboard's reading of /metrics: `node --test origin/dashboard/test`.

import assert from "node:assert/strict";
import { test } from "node:test";
import { histogramIncrease, histograms, increase, parse, quantile } from "../src/prometheus.mjs";

const TEXT = `# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="GET",route="/movies/{id}",status="200",le="0.001"} 6
http_request_duration_seconds_bucket{method="GET",route="/movies/{id}",status="200",le="0.01"} 9
http_request_duration_seconds_bucket{method="GET",route="/movies/{id}",status="200",le="+Inf"} 10
http_request_duration_seconds_count{method="GET",route="/movies/{id}",status="200"} 10
http_request_duration_seconds_bucket{method="GET",route="/movies/{id}",status="404",le="0.001"} 2
http_request_duration_seconds_bucket{method="GET",route="/movies/{id}",status="404",le="0.01"} 2
http_request_duration_seconds_bucket{method="GET",route="/movies/{id}",status="404",le="+Inf"} 2
http_request_duration_seconds_count{method="GET",route="/movies/{id}",status="404"} 2
odd{a="x\\"y\\\\z",b="line\\nbreak",} 1.5e3
nan_gauge NaN
`;

test("parses samples, labels with escapes, exponents and NaN", () => {
  const metrics = parse(TEXT);
  assert.deepEqual(metrics.get("odd"), [{ labels: { a: 'x"y\\z', b: "line\nbreak" }, value: 1500 }]);
  assert.ok(Number.isNaN(metrics.get("nan_gauge")[0].value));
  assert.equal(metrics.get("http_request_duration_seconds_bucket").length, 6);
});

test("sums a histogram's series per key", () => {
  const h = histograms(parse(TEXT), "http_request_duration_seconds", (l) => l.route).get("/movies/{id}");
  assert.equal(h.count, 12);
  assert.deepEqual([...h.buckets], [[0.001, 8], [0.01, 11], [Infinity, 12]]);
});

test("quantiles interpolate within a bucket, as histogram_quantile does", () => {
  const buckets = [[0.001, 8], [0.01, 11], [Infinity, 12]];
  assert.equal(quantile(0.5, buckets), 0.001 * (6 / 8));
  assert.ok(Math.abs(quantile(0.75, buckets) - (0.001 + 0.009 * (1 / 3))) < 1e-12);
  // In the +Inf bucket: the highest finite bound.
  assert.equal(quantile(0.99, buckets), 0.01);
  assert.equal(quantile(0.5, [[0.001, 0], [Infinity, 0]]), null);
});

test("increases between readings, across a restart", () => {
  assert.equal(increase(15, 10), 5);
  assert.equal(increase(3, 10), 3, "a reset counter gained what it holds");
  assert.equal(increase(7, undefined), 7);
  const before = { count: 4, buckets: new Map([[0.001, 4], [Infinity, 4]]) };
  const after = { count: 10, buckets: new Map([[Infinity, 10], [0.001, 5]]) };
  assert.deepEqual(histogramIncrease(after, before), { count: 6, buckets: [[0.001, 1], [Infinity, 6]] });
  const restarted = { count: 2, buckets: new Map([[0.001, 2], [Infinity, 2]]) };
  assert.deepEqual(histogramIncrease(restarted, before).count, 2);
});
