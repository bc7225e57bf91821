"""Load test of ``funnelrec serve``: closed-loop clients against the real server process.

Starts ``python -m funnelrec serve`` on a free loopback port against an artifact folder
(``--artifacts``, default the 1M-row demo at /tmp/demo_v3/artifacts), waits for ``/readyz``,
then for each concurrency level (``--concurrency``, default 1, 8, 32) runs that many client
threads, each sending ``POST /v1/recommend`` (k = ``--k``, a random known user) and the next
request as soon as the answer arrives, for ``--seconds`` after a short warm-up. Reported per
level: throughput, client-side latency p50/p95/p99/max, the server's compute time p50/p99
(``timings_ms.total`` less ``queue``, the wait for a worker's compute slot), the rank stage's
p50/p99 (``timings_ms.rank``), the CPU per request of the server's processes (supervisor and
workers, from ``/proc``: compute plus HTTP, JSON and logging) and of the clients, how the
clients' connections are split between the workers (``/proc/net/tcp``), errors (non-200 or
transport) and degraded responses.

Open loop (``--rate R``): the threads send R requests per second in all at Poisson times, and
latency counts from each request's scheduled time, so a slow server is not hidden by clients
that wait for it. ``--serve-args '--max-batch 1'`` passes options to the server (e.g. to
compare with micro-batching off).

Client: one ``http.client`` keep-alive connection per thread with ``TCP_NODELAY`` (no
Nagle / delayed-ACK 40 ms stalls on loopback). Client threads run on the same 2 cores as the
server, so the numbers include the client's CPU share. ``uptime`` load is recorded before and
after each level (other work on the machine shows there).

The artifact's clock: ``--clock artifact`` makes 'now' start at the artifact's last event, so
the ranker's time-window features look like they did in evaluation.

Issue target: p99 under 30 ms at 8 concurrent clients on a 2-core machine, 500 candidates.

    .venv/bin/python benchmarks/serve_load.py [--artifacts DIR] [--workers 2] [--seconds 20]
        [--rate R] [--serve-args '...']
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from _common import console, render, write_json
from funnelrec.serve.launch import free_port, serve_command

DEFAULT_ARTIFACTS = Path("/tmp/demo_v3/artifacts")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def process_tree(root: int) -> set[int]:
    """``root`` and every process below it (the server's supervisor and its workers), from
    ``/proc``; just ``{root}`` where there is no ``/proc``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir() if Path("/proc/self").exists() else ():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # the process ended meanwhile
                continue
            parents[int(entry.name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return tree


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by :func:`process_tree` of ``root``; 0 where
    there is no ``/proc`` (the column then reads 0)."""
    ticks = 0
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after the command name
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def connections_per_process(root: int, port: int) -> list[int]:
    """How many established connections to ``port`` each server process holds, most first
    (processes holding none left out): keep-alive connections stay with the worker that
    accepted them, so an uneven split caps throughput for the whole run. [] without /proc."""
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                established.add(fields[9])  # the socket's inode
    counts = []
    for pid in process_tree(root):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        held = 0
        for fd in fds:
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            held += target.startswith("socket:[") and target[8:-1] in established
        if held:
            counts.append(held)
    return sorted(counts, reverse=True)


class Connection:
    """A keep-alive HTTP/1.1 connection with TCP_NODELAY, reconnecting after errors."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = self._open()
        headers = {"content-type": "application/json"} if body is not None else {}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def wait_ready(port: int, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            status, _ = Connection(port).request("GET", "/readyz")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server not ready after {timeout_s} s")


def batch_totals(port: int) -> tuple[float, float]:
    """``(requests, funnel runs)`` the workers answered so far, from ``/metrics``: the sum and
    count of ``funnelrec_batch_size`` (requests answered together by one run)."""
    _, text = Connection(port).request("GET", "/metrics")
    totals = {"sum": 0.0, "count": 0.0}
    for line in text.decode().splitlines():
        for part in totals:
            if line.startswith(f"funnelrec_batch_size_{part} "):
                totals[part] += float(line.split()[-1])
    return totals["sum"], totals["count"]


def run_level(
    port: int,
    users: list,
    concurrency: int,
    k: int,
    seconds: float,
    server_pid: int,
    rate: float | None = None,
) -> dict[str, Any]:
    """Closed loop: ``concurrency`` threads, each one request in flight, for ``seconds``.
    Open loop with ``rate``: the threads send ``rate`` requests per second in all, at Poisson
    times, and a request's latency counts from its scheduled time (a thread still waiting for
    its previous answer sends late, and the delay counts: no coordinated omission).
    Also the CPU per request of the server's processes (compute, HTTP, JSON, logging) and
    of this process (the clients), which share the machine's cores."""
    stop = threading.Event()
    measuring = threading.Event()
    results: list[tuple[float, float | None, bool, float]] = []  # latency s, server ms,
    # degraded, rank stage ms
    errors: list[str] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = Connection(port)
        local: list[tuple[float, float | None, bool, float]] = []
        local_errors: list[str] = []
        scheduled = time.perf_counter()
        while not stop.is_set():
            body = json.dumps({"user_id": rng.choice(users), "k": k}).encode()
            start = time.perf_counter()
            if rate is not None:  # this thread's share of a Poisson stream
                scheduled += rng.expovariate(rate / concurrency)
                if stop.wait(max(0.0, scheduled - start)):
                    break
                start = scheduled
            try:
                status, payload = conn.request("POST", "/v1/recommend", body)
            except OSError as e:
                if measuring.is_set():
                    local_errors.append(repr(e))
                continue
            elapsed = time.perf_counter() - start
            if not measuring.is_set():
                continue
            if status != 200:
                local_errors.append(f"{status}: {payload[:200]!r}")
                continue
            answer = json.loads(payload)
            timings = answer["timings_ms"]
            compute = timings["total"] - timings.get("queue", 0.0)  # without the slot wait
            rank = timings.get("rank", float("nan"))
            local.append((elapsed, compute, bool(answer["degraded"]), rank))
        conn.close()
        with lock:
            results.extend(local)
            errors.extend(local_errors)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(min(3.0, seconds / 4))  # warm-up: connections open, caches warm
    load_before = load_average()
    split = connections_per_process(server_pid, port)
    batched_before = batch_totals(port)
    server_cpu, client_cpu = tree_cpu_s(server_pid), time.process_time()
    measuring.set()
    start = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    wall = time.perf_counter() - start
    server_cpu, client_cpu = tree_cpu_s(server_pid) - server_cpu, time.process_time() - client_cpu
    batched_after = batch_totals(port)
    batched = [after - before for after, before in zip(batched_after, batched_before, strict=True)]
    stop.set()
    for t in threads:
        t.join()
    lat = np.array([r[0] for r in results]) * 1e3
    server = np.array([r[1] for r in results if r[1] is not None])
    rank = np.array([r[3] for r in results if r[3] == r[3]])  # NaN: no rank stage ran
    pct = lambda a, q: round(float(np.percentile(a, q)), 2) if a.size else None  # noqa: E731
    return {
        "concurrency": concurrency,
        "offered_rps": rate,
        "requests": len(results),
        "throughput_rps": round(len(results) / wall, 1),
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "p99_ms": pct(lat, 99),
        "max_ms": round(float(lat.max()), 2) if lat.size else None,
        "server_compute_p50_ms": pct(server, 50),
        "server_compute_p99_ms": pct(server, 99),
        "rank_stage_p50_ms": pct(rank, 50),
        "rank_stage_p99_ms": pct(rank, 99),
        "server_cpu_ms_per_request": round(server_cpu * 1e3 / max(len(results), 1), 2),
        "client_cpu_ms_per_request": round(client_cpu * 1e3 / max(len(results), 1), 2),
        "connections_per_worker": split,
        "mean_batch": round(batched[0] / batched[1], 2) if batched[1] else None,
        "errors": len(errors),
        "error_examples": errors[:3],
        "degraded": sum(r[2] for r in results),
        "load_before": load_before,
        "load_after": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=str, default="1,8,32")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=2000, help="Distinct known users drawn.")
    parser.add_argument("--name", default="serve_load", help="Results file name.")
    parser.add_argument(
        "--rate",
        type=float,
        help="open loop: requests per second in all, at Poisson times over the level's "
        "connections (default: closed loop, each connection sends when answered)",
    )
    parser.add_argument(
        "--serve-args",
        default="",
        help="more options for funnelrec serve, e.g. '--max-batch 1'",
    )
    args = parser.parse_args()
    if args.rate is not None and args.rate <= 0:
        parser.error(f"--rate must be positive, got {args.rate}")

    artifacts = args.artifacts.resolve()
    if not (artifacts / "manifest.json").is_file():
        raise SystemExit(f"{artifacts}: not an artifact folder (run `funnelrec demo` first)")
    manifest = json.loads((artifacts / "manifest.json").read_text())
    has_golden = "golden.json" in manifest["files"]
    config = json.loads((artifacts / "config.json").read_text())
    ids = pl.read_parquet(artifacts / "vocab" / "users.parquet")["id"].to_list()
    users = random.Random(0).sample(ids, min(args.users, len(ids)))

    state = Path(tempfile.mkdtemp(prefix="serve_load_"))
    port = free_port()
    cmd = serve_command(artifacts, port, state, "--workers", str(args.workers))
    cmd += shlex.split(args.serve_args)
    if not has_golden:
        console.print("[yellow]artifact has no golden set: serving with --no-self-check[/]")
        cmd.append("--no-self-check")
    console.print(f"starting: {' '.join(cmd)}")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd)
    levels: list[dict[str, Any]] = []
    try:
        wait_ready(port, proc)
        startup_s = time.perf_counter() - started
        console.print(f"ready after {startup_s:.1f} s")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            level = run_level(port, users, concurrency, args.k, args.seconds, proc.pid, args.rate)
            console.print(
                f"c={concurrency}: {level['throughput_rps']} req/s, p50 {level['p50_ms']} ms, "
                f"p99 {level['p99_ms']} ms, errors {level['errors']}, load {level['load_after']}"
            )
            levels.append(level)
        _, metrics = Connection(port).request("GET", "/metrics")
        degraded_lines = [
            line
            for line in metrics.decode().splitlines()
            if line.startswith("funnelrec_degraded_total") or "over_budget_total" in line
        ]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(state, ignore_errors=True)

    render(
        f"serve load: {args.workers} workers, k={args.k}, {args.seconds:.0f} s per level, "
        f"{'closed loop' if args.rate is None else f'open loop at {args.rate:g} req/s'} "
        f"(uptime load before -> after)",
        [
            "clients",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "compute p50",
            "compute p99",
            "server cpu/req",
            "client cpu/req",
            "rank p50",
            "rank p99",
            "conns/worker",
            "batch",
            "errors",
            "degraded",
            "load",
        ],
        [
            [
                lv["concurrency"],
                lv["throughput_rps"],
                lv["p50_ms"],
                lv["p95_ms"],
                lv["p99_ms"],
                lv["max_ms"],
                lv["server_compute_p50_ms"],
                lv["server_compute_p99_ms"],
                lv["server_cpu_ms_per_request"],
                lv["client_cpu_ms_per_request"],
                lv["rank_stage_p50_ms"],
                lv["rank_stage_p99_ms"],
                "/".join(map(str, lv["connections_per_worker"])),
                lv["mean_batch"],
                lv["errors"],
                lv["degraded"],
                f"{lv['load_before'][0]} -> {lv['load_after'][0]}",
            ]
            for lv in levels
        ],
    )
    merge_k = config["recall"]["merge"]["k"]
    score_k = config.get("rank", {}).get("score_k")
    write_json(
        args.name,
        {
            "artifacts": str(artifacts),
            "self_check": has_golden,
            "workers": args.workers,
            "k": args.k,
            "seconds_per_level": args.seconds,
            "open_loop_rps": args.rate,
            "serve_args": args.serve_args,
            "merged_candidates": merge_k,
            "ranked_candidates": score_k,
            "cores": os.cpu_count(),
            "startup_s": round(startup_s, 2),
            "levels": levels,
            "degraded_metrics": degraded_lines,
            "target": "p99 < 30 ms at 8 concurrent clients (2 cores, 500 candidates)",
        },
    )


if __name__ == "__main__":
    main()
