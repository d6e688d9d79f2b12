"""The load curve: throughput and latency as locust steps through more and more users.

Runs one user class of benchmarks/locustfile.py (locust as a library, headless)
at each user count in turn, a fixed time per step, the statistics reset at the
start of each step. Without --url it starts a stack itself (storage-backed mode
on, rate limits lifted) and stops it at the end; it always stops by itself.

    .venv/bin/python -m benchmarks.load_curve                         # MixedUser at 1 2 4 8 16 32 users
    .venv/bin/python -m benchmarks.load_curve --scenario DetectUser --users 1 4 16 --step-seconds 30
    .venv/bin/python -m benchmarks.load_curve --url http://127.0.0.1:8080 --api-key xyl_...

Per step it records users, requests, throughput, p50/p95/p99 latency, failures,
and the CPU each process group used, as cores busy (CPU seconds / wall
seconds): each Triton Python stub by model, tritonserver, the gunicorn
workers, the load generator (this process), and the whole machine. The
service's processes are counted when it runs on this machine (a started
stack, or a --url on loopback: the serve command listening on that port and
every process below it). Writes report.json, report.md (the tables) and
load-curve.png to --out.

The knee is the smallest user count whose throughput reaches 90 % of the
peak throughput: past it, more users add queueing (latency) rather than
requests per second.
"""

# locust first: importing it monkey-patches the standard library for gevent.
from locust import events  # isort: skip
from locust.env import Environment  # isort: skip

import argparse
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import gevent

from benchmarks.cpu_by_process import TICKS, cpu_seconds
from benchmarks.harness import service
from benchmarks.locustfile import SCENARIOS
from tests.integration.stack import ADMIN_PASSWORD, ROOT, STARTED

DEFAULT_USERS = [1, 2, 4, 8, 16, 32]
KNEE_SHARE = 0.9
GENERATOR = "load generator (locust)"
OTHERS = "the stack's other processes"
SHOWN_GROUPS = 6  # the busiest process groups get a column (and a colour); the rest are summed
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --- CPU per process group ---

def _parents() -> dict[int, int]:
    """pid -> parent pid, for every process."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return parents


def descendants(root: int, parents: dict[int, int]) -> set[int]:
    """``root`` and every process below it (serve starts Triton and gunicorn in sessions of their own,
    so the process tree, not the session, says which processes belong to a stack)."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def serve_process(port: int) -> int | None:
    """The `serve` process whose frontend listens on ``port`` on this machine, if it can be found."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: listening
                inodes.add(f"socket:[{fields[9]}]")
    parents = _parents()
    for pid in parents:
        try:
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                break
        except OSError:
            continue
    else:
        return None
    while pid in parents and b"runtime serve" not in _command_line(pid):
        pid = parents[pid]
    return pid if pid in parents else None


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def machine_busy_seconds() -> float:
    """CPU seconds this machine spent on anything but idle and I/O wait, since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS  # without idle, iowait; guest is in user


class CpuProbe:
    """CPU seconds by process group: the processes of one stack (``root``, its serve process, and
    everything below it; none when None) and this process, the load generator."""

    def __init__(self, root: int | None):
        self.root = root

    def sample(self) -> dict:
        stack = descendants(self.root, _parents()) if self.root else set()
        groups: dict[int, tuple[str, float]] = {}
        for pid, (label, seconds) in cpu_seconds().items():
            if pid == os.getpid():
                groups[pid] = (GENERATOR, seconds)
            elif pid in stack:
                groups[pid] = (label, seconds)
        return {"processes": groups, "machine": machine_busy_seconds()}

    @staticmethod
    def cores(before: dict, after: dict, wall: float) -> tuple[dict[str, float], float]:
        """(cores busy per group, cores busy on the whole machine) between two samples."""
        spent: dict[str, float] = {}
        for pid, (label, seconds) in after["processes"].items():
            previous = before["processes"].get(pid, (label, 0.0))[1]
            spent[label] = spent.get(label, 0.0) + seconds - previous
        by_group = {label: round(seconds / wall, 3) for label, seconds in
                    sorted(spent.items(), key=lambda item: -item[1]) if seconds > 0}
        return by_group, round((after["machine"] - before["machine"]) / wall, 3)


# --- running the steps ---

def _errors(stats) -> list[dict]:
    return sorted(({"method": e.method, "name": e.name, "error": str(e.error), "occurrences": e.occurrences}
                   for e in stats.errors.values()), key=lambda e: -e["occurrences"])


def _step_record(users: int, stats, wall: float, exceptions: list[dict]) -> dict:
    total = stats.total
    requests, failures = total.num_requests, total.num_failures
    percentile = total.get_response_time_percentile
    return {"users": users, "duration_s": round(wall, 2), "requests": requests,
            "throughput": round(requests / wall, 2),
            "p50_ms": percentile(0.5) if requests else None, "p95_ms": percentile(0.95) if requests else None,
            "p99_ms": percentile(0.99) if requests else None,
            "failures": failures, "failure_ratio": round(failures / requests, 4) if requests else 0.0,
            "errors": _errors(stats), "exceptions": exceptions, "endpoints": _endpoints(stats)}


def _endpoints(stats) -> dict[str, dict]:
    """Per request name: how many, how many failed, the median and p95 (the mix behind the totals)."""
    return {f"{entry.method} {entry.name}": {
        "requests": entry.num_requests, "failures": entry.num_failures,
        "p50_ms": entry.get_response_time_percentile(0.5), "p95_ms": entry.get_response_time_percentile(0.95)}
        for entry in sorted(stats.entries.values(), key=lambda e: -e.num_requests) if entry.num_requests}


def _new_exceptions(runner, seen: dict[int, int]) -> list[dict]:
    """Exceptions the tasks raised (a bug in a task, not a failed request) since the last call."""
    fresh = []
    for key, row in runner.exceptions.items():
        count = row["count"] - seen.get(key, 0)
        if count:
            fresh.append({"count": count, "message": row["msg"], "traceback": row["traceback"][-1500:]})
        seen[key] = row["count"]
    return fresh


def run_steps(scenario: str, url: str, users: list[int], seconds: float, warmup: float,
              probe: CpuProbe) -> list[dict]:
    """Run ``scenario`` at each user count in turn; one record per step."""
    # stop_timeout: at the end, users finish the request in flight, so the service records nothing
    # after this command has returned.
    environment = Environment(user_classes=[SCENARIOS[scenario]], host=url, events=events, stop_timeout=60)
    runner = environment.create_local_runner()
    steps, seen = [], {}
    try:
        for index, count in enumerate(users, 1):
            print(f"step {index}/{len(users)}: {count} users for {seconds:g} s …", flush=True)
            runner.start(count, spawn_rate=min(count, 100))
            runner.spawning_greenlet.join()
            gevent.sleep(warmup)  # the new users' first requests and the queues settle
            runner.stats.reset_all()
            before = probe.sample()
            started = time.monotonic()
            gevent.sleep(seconds)
            wall = time.monotonic() - started
            record = _step_record(count, runner.stats, wall, _new_exceptions(runner, seen))
            record["cpu_cores"], record["machine_cores_busy"] = probe.cores(before, probe.sample(), wall)
            steps.append(record)
            print(f"  {record['requests']} requests, {record['throughput']:.1f} req/s, "
                  f"p95 {record['p95_ms']} ms, {record['failures']} failures", flush=True)
    finally:
        runner.quit()
    return steps


# --- the report ---

def knee(steps: list[dict]) -> dict | None:
    """The smallest user count whose throughput reaches KNEE_SHARE of the peak."""
    if not steps or max(step["throughput"] for step in steps) <= 0:
        return None
    peak = max(steps, key=lambda step: step["throughput"])
    first = min((s for s in steps if s["throughput"] >= KNEE_SHARE * peak["throughput"]),
                key=lambda s: s["users"])
    return {"users": first["users"], "throughput": first["throughput"], "peak_users": peak["users"],
            "peak_throughput": peak["throughput"],
            "definition": f"the smallest user count whose throughput reaches {KNEE_SHARE:.0%} of the peak"}


def _ms(value) -> str:
    return "–" if value is None else f"{value:.0f}"


def markdown_tables(report: dict) -> str:
    steps = report["steps"]
    lines = ["| users | requests | req/s | p50 ms | p95 ms | p99 ms | failures |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        marker = " ◀ knee" if report["knee"] and s["users"] == report["knee"]["users"] else ""
        latency = " | ".join(_ms(s[name]) for name in ("p50_ms", "p95_ms", "p99_ms"))
        lines.append(f"| {s['users']}{marker} | {s['requests']} | {s['throughput']:.1f} | {latency} | "
                     f"{s['failures']} ({s['failure_ratio']:.1%}) |")
    groups = _cpu_groups(steps)
    if groups:
        lines += ["", f"CPU, cores busy (of {report['cpu_count']}) during each step, {report['cpu_scope']}:",
                  "",
                  "| users | " + " | ".join([*groups, OTHERS]) + " | all of these | whole machine |",
                  "|---:|" + "---:|" * (len(groups) + 3)]
        for s in steps:
            row = [*_group_cores(s, groups), sum(s["cpu_cores"].values()), s["machine_cores_busy"]]
            lines.append(f"| {s['users']} | " + " | ".join(f"{value:.2f}" for value in row) + " |")
    return "\n".join(lines)


def _group_cores(step: dict, groups: list[str]) -> list[float]:
    """Cores busy of each shown group, then of all the others together."""
    cores = step["cpu_cores"]
    return [cores.get(g, 0) for g in groups] + [sum(v for g, v in cores.items() if g not in groups)]


def _cpu_groups(steps: list[dict]) -> list[str]:
    """The process groups shown by name: the busiest at the last step, at most SHOWN_GROUPS."""
    if not steps or "cpu_cores" not in steps[-1]:
        return []
    names = {name for step in steps for name in step["cpu_cores"]}
    ranked = sorted(names, key=lambda name: -steps[-1]["cpu_cores"].get(name, 0))
    return [name for name in ranked[:SHOWN_GROUPS] if max(s["cpu_cores"].get(name, 0) for s in steps) >= 0.01]


def saturation(report: dict) -> str:
    """Who used the CPU at the knee and at the peak, in words."""
    found = report["knee"]
    if not found:
        return "No step completed a request: there is no knee."
    text = (f"Knee: {found['users']} users ({found['throughput']:.1f} req/s; the peak is "
            f"{found['peak_throughput']:.1f} req/s at {found['peak_users']} users). The knee is "
            f"{found['definition']}.")
    by_users = {step["users"]: step for step in report["steps"]}
    moments = [("at the knee", found["users"])]
    if found["peak_users"] != found["users"]:
        moments.append(("at the peak", found["peak_users"]))
    for label, users in moments:
        step = by_users[users]
        if "cpu_cores" in step:
            busiest = ", ".join(f"{name} {cores:.2f}" for name, cores in list(step["cpu_cores"].items())[:4])
            text += (f" CPU {label}: the machine's {report['cpu_count']} cores were "
                     f"{step['machine_cores_busy']:.2f} busy; {busiest} cores.")
    return text


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    steps = report["steps"]
    users = [s["users"] for s in steps]
    groups = _cpu_groups(steps)
    rows = 3 if groups else 2
    figure, axes = pyplot.subplots(rows, 1, figsize=(10, 3.2 * rows), sharex=True, constrained_layout=True)
    axes[0].plot(users, [s["throughput"] for s in steps], "o-", color="tab:blue")
    axes[0].set_ylabel("throughput (req/s)")
    axes[0].set_ylim(bottom=0)
    axes[0].set_title(f"{report['scenario']}: load curve ({report['step_seconds']:g} s per step)")
    for name, style in (("p50_ms", "o-"), ("p95_ms", "s--"), ("p99_ms", "^:")):
        values = [float("nan") if s[name] is None else s[name] for s in steps]  # a step without requests
        axes[1].plot(users, values, style, label=name.replace("_ms", ""))
    axes[1].set_ylabel("latency (ms, log scale)")
    axes[1].set_yscale("log")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    if groups:
        _plot_cpu(axes[2], report, users, groups)
    if report["knee"]:
        at = report["knee"]["users"]
        for axis in axes:
            axis.axvline(at, color="grey", linestyle="--", linewidth=1)
        last = at == max(users)  # write the label on the side where there is room
        axes[0].annotate(f"knee: {at} users\n(≥ {KNEE_SHARE:.0%} of the peak)",
                         (at, report["knee"]["throughput"]), textcoords="offset points",
                         xytext=(-8 if last else 8, -40), ha="right" if last else "left")
    axes[-1].set_xscale("log", base=2)
    axes[-1].set_xticks(users, [str(u) for u in users])
    axes[-1].set_xlabel("concurrent users (closed loop, no wait)")
    for axis in axes:
        axis.grid(True, alpha=0.3)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _plot_cpu(axis, report: dict, users: list[int], groups: list[str]) -> None:
    """Cores busy per process group, stacked, and the whole machine's against its cores."""
    series = list(zip(*(_group_cores(step, groups) for step in report["steps"])))
    axis.stackplot(users, *series, labels=[*groups, OTHERS], alpha=0.8)
    axis.plot(users, [s["machine_cores_busy"] for s in report["steps"]], "k.-", label="whole machine")
    axis.axhline(report["cpu_count"], color="black", linewidth=0.8)
    axis.set_ylabel("CPU (cores busy)")
    axis.set_ylim(0, report["cpu_count"] * 1.1)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    failures = [f"* {e['occurrences']}× {e['method']} {e['name']} at {s['users']} users: {e['error']}"
                for s in report["steps"] for e in s["errors"]]
    markdown = [f"# Load curve: {report['scenario']}", "", f"`{report['command']}`", "",
                f"Against {report['target']}; {report['step_seconds']:g} s per step after "
                f"{report['warmup_seconds']:g} s of warm-up; closed loop (each user sends its next request "
                "when the last one is answered).", "", markdown_tables(report), "", saturation(report)]
    if failures:
        markdown += ["", "Failures:", "", *failures]
    (out / "report.md").write_text("\n".join(markdown) + "\n")
    plot(report, out / "load-curve.png")


# --- the command ---

def _command(argv: list[str]) -> str:
    """The command line for the report, without the API key."""
    shown = [("…" if previous == "--api-key" else word) for previous, word in zip(["", *argv], argv)]
    shown = [word.split("=", 1)[0] + "=…" if word.startswith("--api-key=") else word for word in shown]
    return " ".join([".venv/bin/python -m benchmarks.load_curve", *shown])


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="MixedUser",
                        help="the locustfile's user class (default MixedUser)")
    parser.add_argument("--users", type=int, nargs="+", default=DEFAULT_USERS, help="user count of each step")
    parser.add_argument("--step-seconds", type=float, default=20, help="measured time per step")
    parser.add_argument("--warmup", type=float, default=2,
                        help="seconds after each step's users start, not measured")
    parser.add_argument("--url", help="a running service (default: start a stack for the run)")
    parser.add_argument("--api-key", default=os.environ.get("FACE_API_KEY"),
                        help="X-API-Key for --url (default: $FACE_API_KEY; a started stack uses its own)")
    parser.add_argument("--storage", choices=("on", "off"), default="on",
                        help="storage-backed mode of a started stack (the admin scenarios need it on)")
    parser.add_argument("--out", type=Path, default=ROOT / ".run" / "load-curve", help="the report's folder")
    args = parser.parse_args(argv)
    if any(count < 1 for count in args.users) or args.step_seconds <= 0 or args.warmup < 0:
        parser.error("--users must be at least 1, --step-seconds positive, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_arguments(argv)
    with service(args.url, args.api_key, args.storage) as (url, api_key):
        if api_key:
            os.environ["FACE_API_KEY"] = api_key  # what the locustfile's users send
        if args.url is None:
            os.environ.update(FACE_API_ADMIN_USERNAME="admin", FACE_API_ADMIN_PASSWORD=ADMIN_PASSWORD)
            root = STARTED[-1].process.pid  # the stack that service() started
        else:
            parts = urlsplit(url)
            root = serve_process(parts.port or 80) if parts.hostname in LOOPBACK else None
        scope = ("the service's processes (its serve command and all below it) and the load generator"
                 if root else "the load generator only: the service's processes are not on this machine")
        probe = CpuProbe(root)
        steps = run_steps(args.scenario, url, args.users, args.step_seconds, args.warmup, probe)
    report = {"scenario": args.scenario, "target": url if args.url else "a stack started for the run",
              "command": _command(sys.argv[1:] if argv is None else argv),
              "step_seconds": args.step_seconds, "warmup_seconds": args.warmup, "cpu_count": os.cpu_count(),
              "cpu_scope": scope, "steps": steps, "knee": knee(steps)}
    write_report(report, args.out)
    print(f"\n{markdown_tables(report)}\n\n{saturation(report)}\n\nwritten to {args.out}/: "
          "report.json, report.md, load-curve.png")
    return report


if __name__ == "__main__":
    main()
