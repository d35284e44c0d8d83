#!/usr/bin/env python3
"""uncached.py - the cost of what the cache does not hold, one request at a time over HTTP.

Against a running origin whose cache holds nothing of these keys yet (a fresh
CACHE_NAMESPACE), for COUNT random users and movies, each asked once:

  recommendations  GET /users/{id}/recommendations?strategy=S   (PostgreSQL reads of the
                   user's ratings, fold-in, every movie scored, top 10, titles)
  after a rating   POST /users/{id}/ratings, then the same GET (the incremental fold-in:
                   the user's state is updated by the new rating, not rebuilt)
  similar          GET /movies/{id}/similar

and prints P50/P95/P99 of each, counting only answers that were computed (`Cache-Status`
`fwd=...`), not served from the cache, and for the recommendations the mean of each part of
the computation from the origin's `recommend_part_seconds` histogram (read, solve, score,
select, render; the rest is HTTP, the cache's lookups and stores, and the loopback) (start the origin on a fresh CACHE_NAMESPACE; users
warming already computed are skipped). Python's standard library only; one keep-alive
connection, so the figures are the server's plus a loopback round trip.

  scripts/uncached.py --base http://127.0.0.1:8090 --token "$(origin token --admin)" \\
      --users 162000 --movies 62000 --count 300
"""

import argparse
import http.client
import json
import random
import sys
import time
import urllib.parse


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def report(name, times):
    ms = [t * 1000 for t in times]
    print(
        f"{name:<40} n={len(ms):4}  P50 {percentile(ms, 0.5):6.2f} ms  "
        f"P95 {percentile(ms, 0.95):6.2f} ms  P99 {percentile(ms, 0.99):6.2f} ms"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:8080")
    parser.add_argument("--token", required=True, help="an admin token (origin token --admin)")
    parser.add_argument("--users", type=int, default=943)
    parser.add_argument("--movies", type=int, default=1682)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    url = urllib.parse.urlparse(args.base)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80)
    auth = {"Authorization": f"Bearer {args.token}"}
    rng = random.Random(args.seed)

    def request(method, path, body=None):
        headers = dict(auth)
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        start = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - start
        if response.status >= 300:
            sys.exit(f"{method} {path}: {response.status} {data[:200]!r}")
        return elapsed, response.getheader("cache-status") or "", data

    def computed(status):
        return "fwd=" in status.split(",")[0]

    def parts():
        """The origin's recommend_part_seconds sums and counts, by part."""
        _, _, data = request("GET", "/metrics")
        totals = {}
        for line in data.decode().splitlines():
            for suffix in ("_sum", "_count"):
                prefix = f"recommend_part_seconds{suffix}{{"
                if line.startswith(prefix):
                    labels, value = line[len(prefix):].rsplit("} ", 1)
                    part = labels.split('part="', 1)[1].split('"', 1)[0]
                    totals[(part, suffix)] = totals.get((part, suffix), 0.0) + float(value)
        return totals

    def report_parts(before, after):
        names = ("read", "solve", "score", "select", "render")
        means = []
        for part in names:
            count = after.get((part, "_count"), 0) - before.get((part, "_count"), 0)
            total = after.get((part, "_sum"), 0) - before.get((part, "_sum"), 0)
            means.append(f"{part} {1000 * total / count:.3f}" if count else f"{part} -")
        print(f"{'  its parts, mean ms':<40} " + ", ".join(means))

    # Other users for each strategy: a user's state (ratings, embedding) is cached by their
    # first recommendation, and each strategy must pay for it. A user whose list is cached
    # already (warming computes the most active users') is skipped for the next.
    pool = rng.sample(range(1, args.users + 1), min(args.users, 4 * args.count))
    by_strategy = {}
    for strategy in ("collaborative", "hybrid"):
        before = parts()
        times, users = [], []
        while len(times) < args.count:
            if not pool:
                sys.exit("not enough users whose recommendations are not cached")
            user = pool.pop()
            elapsed, status, _ = request("GET", f"/users/{user}/recommendations?strategy={strategy}")
            if computed(status):
                times.append(elapsed)
                users.append(user)
        by_strategy[strategy] = users
        report(f"recommendations, {strategy}", times)
        report_parts(before, parts())

    # The hybrid users again: their state is cached, so a rating updates it (incremental).
    times, writes = [], []
    for user in by_strategy["hybrid"]:
        movie = rng.randint(1, args.movies)
        elapsed, _, _ = request(
            "POST", f"/users/{user}/ratings", {"movie_id": movie, "rating": 4.5}
        )
        writes.append(elapsed)
        path = f"/users/{user}/recommendations?strategy=hybrid"
        elapsed, status, _ = request("GET", path)
        if not computed(status):
            sys.exit(f"{path} was served from the cache after a rating ({status})")
        times.append(elapsed)
    report("rating write (with invalidation)", writes)
    report("hybrid after the rating (incremental)", times)

    times = []
    for movie in rng.sample(range(1, args.movies + 1), args.count):
        path = f"/movies/{movie}/similar"
        elapsed, status, _ = request("GET", path)
        if computed(status):
            times.append(elapsed)
    report("similar movies", times)


if __name__ == "__main__":
    main()
