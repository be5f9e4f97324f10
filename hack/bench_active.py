"""Active-rollout benchmark harness, run by `hack/bench-scale --active`.

Serves the pool health contract (`GET /health/redis`) on the loopback IP of every canary pod of
namespace `bench` (kwok gives pods IPs inside 127.0.0.0/8), waits until every policy is
analysing its canary at the first step, measures the operator over a window, then breaches a few
canaries and times the rollback. Prints one JSON document. Standard library only; every loop is
bounded in time and stops by itself.

    python3 hack/bench_active.py N WINDOW_SECONDS BREACHES METRICS_URL OPERATOR_PID
"""

import asyncio
import json
import os
import sys
import time
import urllib.request

NS, PORT = "bench", 8000
TRACK, POLICY = "redispool.io/track", "redispool.io/policy"
LE = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0]
REQUESTS_PER_SCRAPE = 500
# Everything ends by then, whatever happens.
DEADLINE = time.monotonic() + 1800

breached = {}  # policy name -> monotonic time the breach became visible (its first failing scrape)
breach_set = set()
pods = {}  # pod name -> (ip, policy, server)
counters = {}  # pod name -> dict of counters
policy_state = {}  # policy name -> (phase, step, consecutive failures, analysis time)
events = []  # (monotonic time, kind, name, value)


def health(pod, policy):
    c = counters.setdefault(pod, {"requests": 0, "failed": 0, "buckets": [0] * len(LE), "sum": 0.0})
    bad = policy in breach_set
    c["requests"] += REQUESTS_PER_SCRAPE
    c["failed"] += REQUESTS_PER_SCRAPE // 2 if bad else 0
    for i in range(len(LE)):
        c["buckets"][i] += REQUESTS_PER_SCRAPE
    c["sum"] += 8.0 * REQUESTS_PER_SCRAPE
    if bad and policy not in breached:
        breached[policy] = time.monotonic()
    return {
        "status": "ok",
        "pool": {"max_connections": 160, "in_use": 32, "available_connections": 128,
                 "utilization_percent": 20.0, "peak_in_use": 32},
        "counters": {"requests_total": c["requests"], "requests_failed_total": c["failed"],
                     "pool_exhaustion_events_total": 0, "redis_connection_errors_total": 0},
        "latency_ms": {"le": LE, "counts": c["buckets"], "count": c["requests"], "sum": c["sum"]},
    }


async def serve_pod(name, ip, policy):
    async def handle(reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = json.dumps(health(name, policy)).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
    return await asyncio.start_server(handle, ip, PORT)


async def lines(*cmd):
    """Yields the lines a `kubectl ... --watch` prints, until the deadline."""
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        while time.monotonic() < DEADLINE:
            line = await proc.stdout.readline()
            if not line:
                return
            yield line.decode().strip()
    finally:
        proc.kill()


async def watch_pods():
    template = ("{.metadata.name} {.status.podIP} {.metadata.labels.redispool\\.io/policy} "
                "{.metadata.deletionTimestamp}{\"\\n\"}")
    async for line in lines("kubectl", "get", "pods", "-n", NS, "-l", f"{TRACK}=canary", "--watch",
                            "-o", f"jsonpath={template}"):
        parts = line.split()
        if len(parts) < 3 or not parts[1].startswith("127."):
            continue
        name, ip, policy = parts[:3]
        if len(parts) > 3:  # being deleted
            if name in pods:
                pods.pop(name)[2].close()
            continue
        if name not in pods:
            try:
                pods[name] = (ip, policy, await serve_pod(name, ip, policy))
            except OSError as e:
                print(f"cannot serve {name} on {ip}: {e}", file=sys.stderr)


async def watch_policies():
    template = ("{.metadata.name} {.status.phase} {.status.step} {.status.analysis.consecutiveFailures} "
                "{.status.analysis.at}{\"\\n\"}")
    async for line in lines("kubectl", "get", "redispoolpolicies", "-n", NS, "--watch", "-o",
                            f"jsonpath={template}"):
        parts = line.split() + [""] * 5
        name, phase, step, failures, at = parts[:5]
        before = policy_state.get(name)
        policy_state[name] = (phase, step, failures, at)
        if before is None or before[0] != phase:
            events.append((time.monotonic(), "phase", name, phase))
        if before is not None and before[2] != failures:
            events.append((time.monotonic(), "failures", name, failures))


async def watch_targets():
    template = "{.metadata.name} {.spec.replicas}{\"\\n\"}"
    seen = {}
    async for line in lines("kubectl", "get", "deployments", "-n", NS, "--watch", "-o", f"jsonpath={template}"):
        parts = line.split()
        if len(parts) != 2 or parts[0].endswith("-canary"):
            continue
        if seen.get(parts[0]) != parts[1]:
            seen[parts[0]] = parts[1]
            events.append((time.monotonic(), "replicas", parts[0], int(parts[1])))


def metrics(url):
    """The samples of a Prometheus text endpoint, by series (name and labels) -> value."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def total(m, prefix):
    return sum(v for k, v in m.items() if k == prefix or k.startswith(prefix + "{"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


async def wait_for(what, timeout, done):
    end = min(time.monotonic() + timeout, DEADLINE)
    while time.monotonic() < end:
        if done():
            return
        await asyncio.sleep(1)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


async def main():
    tasks = [asyncio.create_task(t()) for t in (watch_pods, watch_policies, watch_targets)]
    started = time.monotonic()

    def analysing():
        return sum(1 for (phase, step, _, at) in policy_state.values() if phase == "Progressing" and step == "0" and at)

    await wait_for(f"{N} policies analysing their canaries at step 1", 900, lambda: analysing() >= N)
    ready_after = time.monotonic() - started
    # The window: every policy analysing, nothing else going on.
    m0, c0, t0 = metrics(METRICS), cpu_seconds(PID), time.monotonic()
    await asyncio.sleep(WINDOW)
    m1, c1, t1 = metrics(METRICS), cpu_seconds(PID), time.monotonic()
    minutes = (t1 - t0) / 60

    def diff(prefix):
        return total(m1, prefix) - total(m0, prefix)

    verbs = sorted({k.split('verb="')[1].split('"')[0] for k in m1 if k.startswith("redis_pool_operator_api_requests_total{")})
    analyses = diff("redis_pool_operator_analyses_total")
    window = {
        "seconds": round(t1 - t0, 1),
        "analyses": int(analyses),
        "cpu_seconds": round(c1 - c0, 2),
        "cpu_ms_per_analysis": round(1000 * (c1 - c0) / analyses, 2) if analyses else None,
        "cpu_percent_of_a_core": round(100 * (c1 - c0) / (t1 - t0), 1),
        "reconciles_per_policy_minute": round(diff("redis_pool_operator_reconciles_total") / N / minutes, 2),
        "status_writes_per_policy_minute": round(
            (total(m1, 'redis_pool_operator_writes_total{result="status"}') -
             total(m0, 'redis_pool_operator_writes_total{result="status"}')) / N / minutes, 2),
        "writes_per_policy_minute": round(diff("redis_pool_operator_writes_total") / N / minutes, 2),
        "requests_per_policy_minute": round(diff("redis_pool_operator_api_requests_total") / N / minutes, 2),
        "requests_by_verb_per_minute": {
            v: round((m1.get(f'redis_pool_operator_api_requests_total{{verb="{v}"}}', 0) -
                      m0.get(f'redis_pool_operator_api_requests_total{{verb="{v}"}}', 0)) / minutes, 1)
            for v in verbs},
        "rss_mib": round(rss_kib(PID, "VmRSS") / 1024, 1),
        "peak_rss_mib": round(rss_kib(PID, "VmHWM") / 1024, 1),
    }

    # The breach: a few canaries start failing half their requests.
    victims = sorted(policy_state)[:BREACHES]
    mark = len(events)
    breach_at = time.monotonic()
    breach_set.update(victims)
    await wait_for(f"{len(victims)} rollbacks", 600,
                   lambda: all(policy_state[v][0] == "RolledBack" for v in victims))
    await asyncio.sleep(2)
    rollbacks = []
    for v in victims:
        seen = breached.get(v, breach_at)
        after = [e for e in events[mark:] if e[2] == v]
        first_fail = next((t for (t, kind, _, val) in after if kind == "failures" and val not in ("", "0")), None)
        decided = next((t for (t, kind, _, val) in after if kind == "phase" and val in ("RollingBack", "RolledBack")), None)
        scaled = next((t for (t, kind, _, val) in after if kind == "replicas"), None)
        rollbacks.append({
            "policy": v,
            "first_failed_analysis_s": round(first_fail - seen, 2) if first_fail else None,
            "decision_s": round(decided - seen, 2) if decided else None,
            "stable_scale_up_patch_s": round(scaled - seen, 2) if scaled else None,
            # The operator scales the stable back first and then writes the status that says so.
            "status_after_patch_s": round(decided - scaled, 2) if scaled and decided else None,
        })
    for t in tasks:
        t.cancel()
    print(json.dumps({"ready_after_s": round(ready_after, 1), "window": window, "rollbacks": rollbacks}, indent=2))


if __name__ == "__main__":
    N, WINDOW, BREACHES = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    METRICS, PID = sys.argv[4], int(sys.argv[5])
    asyncio.run(main())
