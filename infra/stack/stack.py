"""Bring the local stack up, report on it, and take it down."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from infra.settings import Settings
from infra.stack import process
from infra.stack.process import StackError
from infra.stack.services import Service, all_services


@dataclass
class Status:
    service: str
    state: str  # "up", "down", "starting"
    endpoint: str
    version: str
    pid: int | None
    rss_bytes: int
    detail: str


def select(settings: Settings, names: list[str] | None) -> list[Service]:
    services = all_services(settings)
    if not names:
        return services
    known = {s.name: s for s in services}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StackError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]


def fetch_all(settings: Settings, services: list[Service], *, flink_jars: bool = True) -> None:
    """Fetch the services (and the Flink jars the jobs load) in parallel; downloads are I/O bound."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(s.fetch) for s in services]
        if flink_jars:
            futures.append(pool.submit(_fetch_flink_jars, settings))
        for f in futures:
            f.result()


def _fetch_flink_jars(settings: Settings) -> None:
    from infra.stack.flink_jars import strata_jar

    strata_jar(settings)  # fetches the connector jars first


def _wait_healthy(service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    reason = "not checked"
    while time.monotonic() < deadline:
        if service.pid() is None:
            raise StackError(
                f"{service.name} exited during start. Last lines of {service.log_file}:\n"
                f"{process.tail(service.log_file)}"
            )
        reason = service.check() or ""
        if not reason:
            return
        time.sleep(1.0)
    raise StackError(
        f"{service.name} did not become healthy within {timeout:.0f}s ({reason}). "
        f"Last lines of {service.log_file}:\n{process.tail(service.log_file)}"
    )


def up(
    settings: Settings, names: list[str] | None = None, log: Callable[[str], None] = print
) -> list[Status]:
    services = select(settings, names)
    for d in (settings.cache_dir, settings.data_dir, settings.log_dir, settings.run_dir):
        d.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    # Ports first: a taken port is a quick, clear answer, not one after minutes of downloads.
    for s in services:
        if s.pid() is None:
            for port in s.ports:
                if process.port_in_use(settings.bind_host, port.number):
                    raise StackError(f"{s.name}: {port.describe()}")
    fetch_all(settings, services, flink_jars=not names)
    log(f"fetched everything in {time.monotonic() - t0:.0f}s")
    started: list[Service] = []
    for s in services:
        if s.pid() is not None:
            continue
        log(f"starting {s.name} {s.version}")
        s.start()
        started.append(s)
    # Wait for all in parallel: the JVMs warm up side by side.
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        futures = {s.name: pool.submit(_wait_healthy, s, settings.start_timeout_s) for s in services}
        errors = []
        for name, f in futures.items():
            try:
                f.result()
            except StackError as exc:
                errors.append(str(exc))
            else:
                log(f"{name} is healthy")
    if errors:
        raise StackError("\n\n".join(errors))
    for s in services:
        s.provision()
    log(f"stack up in {time.monotonic() - t0:.0f}s")
    return status(settings, names)


def status(settings: Settings, names: list[str] | None = None) -> list[Status]:
    services = select(settings, names)

    def one(s: Service) -> Status:
        pid = s.pid()
        reason = s.check()
        if reason is None:
            state, detail = "up", "healthy"
            if pid is None:
                detail = "healthy (not started by strata)"
        elif pid is not None:
            state, detail = "starting", reason
        else:
            state, detail = "down", f"not running ({reason})"
        return Status(s.name, state, s.endpoint, s.version, pid, process.rss_bytes(pid) if pid else 0, detail)

    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        return list(pool.map(one, services))


def down(
    settings: Settings,
    names: list[str] | None = None,
    purge: bool = False,
    log: Callable[[str], None] = print,
) -> None:
    for s in reversed(select(settings, names)):
        if s.stop():
            log(f"stopped {s.name}")
        if purge:
            s.purge()
            log(f"purged {s.name}'s data")


def format_table(rows: list[Status]) -> str:
    header = ("SERVICE", "STATE", "ENDPOINT", "VERSION", "PID", "RSS", "DETAIL")
    lines = [header]
    for r in rows:
        rss = f"{r.rss_bytes / 2**20:.0f} MiB" if r.rss_bytes else "-"
        lines.append((r.service, r.state, r.endpoint, r.version, str(r.pid or "-"), rss, r.detail))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    out = []
    for row in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)) + "  " + row[-1])
    total = sum(r.rss_bytes for r in rows)
    out.append(f"total resident memory: {total / 2**30:.2f} GiB")
    return "\n".join(out)
