"""One run of the side-by-side benchmark, driven by `hack/bench-peers`.

    python3 hack/bench_peers.py SYSTEM VARIANT N WINDOW_SECONDS -- CONTROLLER COMMAND...

SYSTEM is `ours` or `argo`, VARIANT `idle` or `active`. Expects an empty local control plane
(KUBECONFIG) with the system's CRDs applied and the namespace `bench`. Creates N equivalent
objects, starts the controller, waits until it has converged, measures it over a window and
prints one JSON document. Standard library only; every wait is bounded and fails with a message.

idle:   N targets with 0 replicas, started with the controller. Converged: every policy Idle or
        Succeeded (half need their pool written), every Rollout Healthy.
active: N targets of 1 replica, converged idle first; then one change rolls all N out to a
        canary at the first step (10%, paused 1 h), analysed every 30 s against a loopback
        stand-in. Converged: every rollout has analysed its canary once.
"""

import asyncio
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import bench_active as stand_in

SYSTEM, VARIANT, N, WINDOW = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
COMMAND = sys.argv[sys.argv.index("--") + 1:]
NS = "bench"
WEB_PORT = 18300  # Argo's web metric stand-in
METRICS = {"ours": "http://127.0.0.1:18099/metrics", "argo": "http://127.0.0.1:18090/metrics"}[SYSTEM]
# Each controller's own count of its requests to the API server, by verb.
REQUESTS = {"ours": "redis_pool_operator_api_requests_total", "argo": "controller_clientset_k8s_request_total"}[SYSTEM]
READS = {"get", "list", "watch"}
ACTIVE = VARIANT == "active"
REPLICAS = 1 if ACTIVE else 0

ENV = """        env:
        - {{name: DEPLOYMENT_ENV, value: production}}
        - {{name: WORKERS, value: "4"}}
        - {{name: REDIS_POOL_MAX_CONNECTIONS, value: "{pool}"}}
        - {{name: REDIS_HEALTH_CHECK_INTERVAL, value: "30"}}
        - {{name: REDIS_RETRY_ATTEMPTS, value: "3"}}
        - {{name: REDIS_RETRY_BACKOFF_MS, value: "100"}}
        - {{name: REDIS_RETRY_BACKOFF_MAX_MS, value: "2000"}}
        - {{name: REDIS_SOCKET_TIMEOUT, value: "5"}}
        - {{name: REDIS_SOCKET_CONNECT_TIMEOUT, value: "5"}}"""


def template(i, pool):
    return f"""  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      containers:
      - name: api
        image: example/app:1
{ENV.format(pool=pool)}"""


def ours(i, desired):
    """A Deployment and its policy; `desired` is the connections per worker the policy asks for."""
    current = 30 if ACTIVE or i % 2 else 40  # idle: half already carry the desired pool
    rollout = """
  rollout:
    steps: [{weight: 10, pause: 1h}, {weight: 50, pause: 1h}, {weight: 100, pause: 1h}]
    analysis: {interval: 30s, failureLimit: 2, progressDeadline: 1h, minRequests: 100, onNoData: Hold}
    metrics: {provider: Pods, pods: {port: 8000, path: /health/redis}}""" if ACTIVE else ""
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}, namespace: {NS}, labels: {{app: app-{i}}}}}
spec:
  replicas: {REPLICAS}
{template(i, current)}
---
apiVersion: redispool.io/v1alpha1
kind: RedisPoolPolicy
metadata: {{name: app-{i}, namespace: {NS}}}
spec:
  targetRef: {{name: app-{i}}}
  environment: production
  tiers:
  - {{name: production, workers: 4, connectionsPerWorker: {desired}}}{rollout}"""


def argo(i, pool):
    """A Rollout with the same steps (and, active, a background analysis every 30 s)."""
    analysis = """
      analysis:
        templates: [{templateName: health}]""" if ACTIVE else ""
    return f"""---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: app-{i}, namespace: {NS}}}
spec:
  replicas: {REPLICAS}
{template(i, pool)}
  strategy:
    canary:{analysis}
      steps:
      - setWeight: 10
      - pause: {{duration: 1h}}
      - setWeight: 50
      - pause: {{duration: 1h}}"""


ANALYSIS_TEMPLATE = f"""---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: health, namespace: {NS}}}
spec:
  metrics:
  - name: health
    interval: 30s
    failureLimit: 2
    successCondition: result == true
    provider:
      web:
        url: http://127.0.0.1:{WEB_PORT}/health
        jsonPath: "{{$.ok}}"
        timeoutSeconds: 5
"""


def objects(pool):
    make = ours if SYSTEM == "ours" else argo
    docs = [make(i, pool) for i in range(N)]
    if SYSTEM == "argo" and ACTIVE:
        docs.insert(0, ANALYSIS_TEMPLATE)
    return "\n".join(docs) + "\n"


def kubectl(*args, stdin=None):
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=True,
                          timeout=300).stdout


def column(resource, jsonpath):
    return kubectl("get", resource, "-n", NS, "-o", f"jsonpath={{range .items[*]}}{jsonpath}{{\"\\n\"}}{{end}}").split("\n")


def idle_converged():
    if SYSTEM == "ours":
        return sum(p in ("Idle", "Succeeded") for p in column("redispoolpolicies", "{.status.phase}"))
    return sum(p == "Healthy" for p in column("rollouts.argoproj.io", "{.status.phase}"))


def analysed():
    if SYSTEM == "ours":
        return sum(len(f) == 3 and f[:2] == ["Progressing", "0"] for f in
                   (line.split() for line in column("redispoolpolicies", "{.status.phase} {.status.step} {.status.analysis.at}")))
    return sum(line.startswith("Running") and line.split()[1:2] not in ([], ["0"]) for line in
               column("analysisruns.argoproj.io", "{.status.phase} {.status.metricResults[0].count}"))


async def wait_until(what, timeout, count):
    end = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < end:
        seen = await asyncio.to_thread(count)
        if seen >= N:
            return
        await asyncio.sleep(2)
    raise SystemExit(f"{SYSTEM} {VARIANT}: only {seen} of {N} {what} after {timeout}s")


class Web(http.server.BaseHTTPRequestHandler):
    """Argo's web metric: always healthy."""

    def do_GET(self):
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def requests_by_verb(m):
    """Requests by verb, and by verb and kind where the counter says the kind (Argo's does)."""
    out = {}
    for key, value in m.items():
        if key.startswith(REQUESTS + "{"):
            verb = key.split('verb="')[1].split('"')[0].lower()
            if 'kind="' in key:
                verb += " " + key.split('kind="')[1].split('"')[0]
            out[verb] = out.get(verb, 0) + value
    return out


def difference(before, after):
    return {k: round(after[k] - before.get(k, 0)) for k in sorted(after) if after[k] - before.get(k, 0)}


async def main():
    controller = None
    tasks = []
    try:
        if SYSTEM == "argo" and ACTIVE:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", WEB_PORT), Web)
            threading.Thread(target=server.serve_forever, daemon=True).start()
        if SYSTEM == "ours" and ACTIVE:
            # Serves the health contract on every canary pod's loopback IP.
            tasks.append(asyncio.create_task(stand_in.watch_pods()))
        # Active: the policies first ask for the pool the targets carry, so both systems start
        # from a converged, idle state and the change below starts every rollout at once.
        await asyncio.to_thread(kubectl, "apply", "-f", "-", stdin=objects(30 if ACTIVE else 40))
        log = open(os.environ.get("BENCH_LOG", os.devnull), "w")
        controller = subprocess.Popen(COMMAND, stdout=log, stderr=subprocess.STDOUT)
        pid = controller.pid
        started = time.monotonic()
        m_start = {}
        await wait_until("converged", 900, idle_converged)
        converge = time.monotonic() - started
        if ACTIVE:
            # The change: ours gets a new desired pool in its policies, Argo a new pod template.
            m_start = await asyncio.to_thread(stand_in.metrics, METRICS)
            await asyncio.to_thread(kubectl, "apply", "-f", "-", stdin=objects(40))
            started = time.monotonic()
            await wait_until("rollouts analysed once", 900, analysed)
            converge = time.monotonic() - started
        cpu_converged = stand_in.cpu_seconds(pid)
        m_converged = await asyncio.to_thread(stand_in.metrics, METRICS)
        converge_requests = difference(requests_by_verb(m_start), requests_by_verb(m_converged))
        peak_converged = stand_in.rss_kib(pid, "VmHWM")
        await asyncio.sleep(5)
        m0, c0, t0 = await asyncio.to_thread(stand_in.metrics, METRICS), stand_in.cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(WINDOW)
        m1, c1, t1 = await asyncio.to_thread(stand_in.metrics, METRICS), stand_in.cpu_seconds(pid), time.monotonic()
        r0, r1 = requests_by_verb(m0), requests_by_verb(m1)
        window = difference(r0, r1)
        print(json.dumps({
            "system": SYSTEM, "variant": VARIANT, "n": N,
            "converge_s": round(converge, 1),
            "cpu_until_converged_s": round(cpu_converged, 1),
            "converge_requests": sum(converge_requests.values()),
            "converge_requests_by_verb": converge_requests,
            "rss_mib": round(stand_in.rss_kib(pid, "VmRSS") / 1024, 1),
            "peak_mib": round(max(peak_converged, stand_in.rss_kib(pid, "VmHWM")) / 1024, 1),
            "window_s": round(t1 - t0, 1),
            "window_cpu_s": round(c1 - c0, 2),
            "window_requests": sum(window.values()),
            "window_writes": sum(v for k, v in window.items() if k.split()[0] not in READS),
            "window_requests_by_verb": window,
        }))
    finally:
        for t in tasks:
            t.cancel()
        if controller is not None:
            controller.send_signal(signal.SIGINT)
            try:
                controller.wait(10)
            except subprocess.TimeoutExpired:
                controller.kill()


if __name__ == "__main__":
    asyncio.run(main())
