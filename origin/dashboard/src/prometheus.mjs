// Reading the origin's `/metrics` (Prometheus text exposition format 0.0.4) and turning two
// readings of it into rates and quantiles, the way PromQL's `rate()` and
// `histogram_quantile()` do. Pure functions: `node --test origin/dashboard/test` checks them.

/**
 * Parses exposition text into a Map from metric name to its samples `{labels, value}`.
 * Comments (`# HELP`, `# TYPE`) and lines that do not parse are skipped.
 * @param {string} text
 * @returns {Map<string, {labels: Record<string, string>, value: number}[]>}
 */
export function parse(text) {
  const metrics = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const sample = parseLine(line);
    if (!sample) continue;
    let samples = metrics.get(sample.name);
    if (!samples) metrics.set(sample.name, (samples = []));
    samples.push({ labels: sample.labels, value: sample.value });
  }
  return metrics;
}

/** `name{a="x",b="y"} value [timestamp]`, with `\\`, `\"` and `\n` escapes in label values. */
function parseLine(line) {
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!name) return null;
  let i = name[0].length;
  const labels = {};
  if (line[i] === "{") {
    i += 1;
    for (;;) {
      while (line[i] === "," || line[i] === " ") i += 1;
      if (line[i] === "}") break;
      const eq = line.indexOf('="', i);
      if (eq < 0) return null;
      const key = line.slice(i, eq);
      let value = "";
      for (i = eq + 2; line[i] !== '"'; i += 1) {
        if (i >= line.length) return null;
        if (line[i] === "\\") {
          i += 1;
          value += line[i] === "n" ? "\n" : line[i];
        } else {
          value += line[i];
        }
      }
      labels[key] = value;
      i += 1;
    }
    i += 1;
  }
  const token = line.slice(i).trim().split(/\s+/)[0];
  const value = number(token);
  if (token === "" || (Number.isNaN(value) && token !== "NaN")) return null;
  return { name: name[0], labels, value };
}

/** A sample value: a float, `+Inf`, `-Inf` or `NaN`. */
function number(text) {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

/**
 * The histogram `name` (its `_bucket` and `_count` series), with the series that `keyOf`
 * maps to the same key added up (e.g. every status of one route). `keyOf` returning `null`
 * leaves a series out.
 * @returns {Map<string, {count: number, buckets: Map<number, number>}>} cumulative counts by
 *   upper bound (`le`), `Infinity` included
 */
export function histograms(metrics, name, keyOf) {
  const out = new Map();
  const entry = (key) => {
    let h = out.get(key);
    if (!h) out.set(key, (h = { count: 0, buckets: new Map() }));
    return h;
  };
  for (const { labels, value } of metrics.get(`${name}_bucket`) ?? []) {
    const key = keyOf(labels);
    if (key === null) continue;
    const le = number(labels.le);
    const buckets = entry(key).buckets;
    buckets.set(le, (buckets.get(le) ?? 0) + value);
  }
  for (const { labels, value } of metrics.get(`${name}_count`) ?? []) {
    const key = keyOf(labels);
    if (key !== null) entry(key).count += value;
  }
  return out;
}

/**
 * What a counter gained from `before` to `after`. A counter that went down was reset (the
 * process restarted): it gained what it holds now, as in PromQL.
 */
export function increase(after, before) {
  if (before === undefined || after < before) return after;
  return after - before;
}

/**
 * The increase of one histogram between two readings (`before` may be undefined: a series
 * that appeared since counts in full).
 * @returns {{count: number, buckets: [number, number][]}} cumulative counts, sorted by bound
 */
export function histogramIncrease(after, before) {
  const reset = before !== undefined && after.count < before.count;
  const base = reset ? undefined : before;
  const buckets = [...after.buckets]
    .map(([le, count]) => [le, increase(count, base?.buckets.get(le))])
    .sort((a, b) => a[0] - b[0]);
  return { count: increase(after.count, base?.count), buckets };
}

/**
 * The `q` quantile (0..1) of observations given as cumulative bucket counts sorted by upper
 * bound, interpolated linearly within the bucket it falls in, as `histogram_quantile` does:
 * the lowest bucket starts at 0, and a quantile in the `+Inf` bucket is the highest finite
 * bound. `null` without observations.
 * @param {number} q
 * @param {[number, number][]} buckets
 */
export function quantile(q, buckets) {
  if (buckets.length === 0) return null;
  const total = buckets[buckets.length - 1][1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return lower;
      if (count === below) return le;
      return lower + ((le - lower) * (rank - below)) / (count - below);
    }
    lower = le;
    below = count;
  }
  return lower;
}
