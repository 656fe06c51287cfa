"""Run a scenario over a fleet: in this process, or spread over worker processes.

The edge of :mod:`phone.scenario` (processes and a temporary folder live here; the runner
itself is pure). With ``workers=1`` the fleet runs in this process. With ``workers=N``:

1. this process builds the lab once (RSA key generation is slow and random) and saves it to a
   temporary lab folder (:func:`phone.cluster.store.save_lab`);
2. it draws, in advance, the RSA keys the scenario's ``regenerate`` steps will need, so every
   worker regenerates with the same keys;
3. the fleet is cut into K shards: shard ``k`` holds the phones whose index is ``k`` modulo K.
   K is N, or the next multiple of N when a shard would hold more than ``shard_phones`` phones
   (:data:`SHARD_PHONES`): a worker keeps every phone of the shard it runs in memory until the
   shard's last step, so the shard size, not the fleet, bounds a worker's memory (about 20 KiB
   per phone, docs/performance.md). A multiple of N, so that every worker runs as many shards
   and the shards differ by one phone at most: 12,000 phones on 2 workers are 4 shards of
   3,000, not 3 shards of which one worker runs two (its wall time the run's);
4. each worker (``spawn``: safe with threads, the same on every OS) runs shards ``w``, ``w + N``,
   ``w + 2N``... one after the other: for each it loads the lab folder afresh and replays
   every lab step, then sends the shard's tallies and lets its phones go;
5. the shards' tallies are merged by addition (:func:`phone.scenario.report.merge`), so the
   report is the same for any N and any K. Certificates regenerated in different shards carry
   different random serials; no report field shows a serial (reasons are masked, :func:`mask`).

Phones enrolling an LSC through CAPF (a ``capf`` step) generate their own RSA keys, as real
phones do: in a worker they draw from a source of their own, never from the pre-drawn
regeneration keys (whose order every worker must replay identically). When the caller's key
source is a :class:`~phone.pki.PooledKeys` (tests, benchmarks: "do not generate keys"), the
workers get a few pooled keys for the phones too; otherwise each worker generates fresh ones.
The LSCs then differ between runs in their keys and serials only, which no report shows
either. CAPF state (pending operations, outcomes, the LSC a device record knows) lives on
device records, which concern one phone each, so each shard holds its own phones' state.

Progress: workers add the phone operations they finish to a shared counter; this process
reads it while it waits and calls ``progress(done, total)``.
"""

from __future__ import annotations

import gc
import multiprocessing
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from phone.catalog.loads import catalogue_images
from phone.cluster.store import load_lab, save_lab
from phone.errors import UsageError, VphoneError
from phone.pki import FreshKeys, KeySource, PooledKeys, key_from_pem, key_to_pem
from phone.scenario.model import Scenario, ScenarioError
from phone.scenario.parse import CERT_KINDS
from phone.scenario.report import Report, merge
from phone.scenario.runner import (
    RunInterrupted,
    ScenarioRunner,
    ShardResult,
    build_lab,
    seeded_random,
)

__all__ = [
    "MAX_WORKERS",
    "SHARD_PHONES",
    "FleetInterrupted",
    "FleetProgress",
    "planned_operations",
    "run_scenario",
]

MAX_WORKERS = 64
# Phones one shard holds at most. A worker's memory grows with the phones of the shard it runs
# (about 20 KiB each, docs/performance.md): 5,000 phones keep a worker near 150 MiB. A new shard
# costs a lab load (tens of milliseconds), so shards are not made much smaller.
SHARD_PHONES = 5_000
_BATCH = 64  # phone operations a worker does between two updates of the shared counter
_LSC_BITS = 2048  # CAPF asks phones for RSA-2048 keys (phone.cluster.capf)
_POLL_SECONDS = 0.1
_STOP_SECONDS = 30.0  # after Ctrl-C: how long the workers have to send the steps they finished
_SHARD_GC_THRESHOLDS = (10_000, 10, 10)  # gc.set_threshold while a shard runs (_run_shard)


class FleetInterrupted(KeyboardInterrupt):
    """Ctrl-C ended a run: how far it got, and the partial report of the steps every shard
    finished when there is one (the CLI writes it, prints one line and exits 130)."""

    def __init__(self, done: int, total: int, report: Report | None = None) -> None:
        super().__init__(done, total)
        self.done = done
        self.total = total
        self.report = report

    def summary(self) -> str:
        """``interrupted after 1,234 of 30,000 phone operations (4%); ...`` and what of the
        report there is."""
        share = 100 * self.done // max(self.total, 1)
        head = f"interrupted after {self.done:,} of {self.total:,} phone operations ({share}%); "
        if self.report is None:
            return head + "no report was written"
        if not self.report.interrupted:  # every worker had finished: the whole report
            return head + "the report is complete"
        if self.report.uncounted:  # a fleet in shards: some phones are in no count
            return (
                head
                + f"the report shows what the phones it counts finished: {self.report.interrupted}"
            )
        return head + f"the report shows what every phone finished: {self.report.interrupted}"


FleetProgress = Callable[[int, int], None]
"""Called with (phone operations done, phone operations planned)."""


def planned_operations(scenario: Scenario) -> int:
    """How many phone operations a run makes at most (the progress bar's 100%)."""
    total = sum(g.count for g in scenario.groups if g.powered)
    for step in scenario.steps:
        if step.action in (
            "boot",
            "reset",
            "power-on",
            "power-off",
            "erase-trust",
            "factory-reset",
        ):
            total += sum(scenario.group(name).count for name in step.groups)
    return max(total, 1)


def _enrollments(scenario: Scenario) -> int:
    """How many RSA key pairs the phones may generate for CAPF (install or upgrade steps)."""
    total = 0
    for step in scenario.steps:
        if (
            step.action == "capf"
            and step.param("operation") in ("install", "upgrade")
            and step.param("key_type", "rsa-2048") == "rsa-2048"  # EC keys come from no pool
        ):
            total += sum(scenario.group(name).count for name in step.groups)
    return total


def _phone_keys(scenario: Scenario, keys: KeySource, workers: int) -> list[RSAPrivateKey] | None:
    """Pooled RSA-2048 keys for the workers' phones, or None: each worker generates fresh keys.

    Only a pool is shared out (a caller who pooled the lab's keys does not want key generation
    either); at most as many keys as one shard's phones may need, and never more than the pool
    holds, so the keys a worker hands its phones stay distinct as far as the pool allows.
    """
    if not isinstance(keys, PooledKeys) or keys.pool_size(_LSC_BITS) == 0:
        return None
    needed = -(-_enrollments(scenario) // workers)  # the busiest shard's share, rounded up
    if needed == 0:
        return None
    return [keys.rsa(_LSC_BITS) for _ in range(min(needed, keys.pool_size(_LSC_BITS)))]


def _regeneration_keys(scenario: Scenario, keys: KeySource) -> dict[int, list[RSAPrivateKey]]:
    """The keys the ``regenerate`` steps will draw, in the order they draw them."""
    drawn: dict[int, list[RSAPrivateKey]] = {}
    for step in scenario.steps:
        if step.action != "regenerate":
            continue
        cluster = scenario.cluster(step.param("cluster"))
        per_node = step.param("cert") in ("callmanager", "tvs", "tomcat")
        count = cluster.tvs_nodes if per_node and "node" not in step.params else 1
        for _ in range(count):
            drawn.setdefault(cluster.key_size, []).append(keys.rsa(cluster.key_size))
    return drawn


@dataclass(frozen=True, slots=True)
class _Job:
    """What a worker process needs (picklable)."""

    scenario: Scenario
    lab_path: str
    keys_pem: dict[int, list[bytes]]
    shard: int
    shards: int
    phone_keys_pem: list[bytes] | None = None  # None: the phones generate fresh keys


def shard_count(scenario: Scenario, workers: int, shard_phones: int = SHARD_PHONES) -> int:
    """How many shards a fleet is cut into: one per worker, or the fewest more that is a
    multiple of ``workers`` and puts no more than ``shard_phones`` phones in a shard."""
    if shard_phones < 1:
        raise UsageError(f"a shard must hold at least one phone, not {shard_phones}")
    phones = max(1, scenario.phone_count)
    needed = -(-phones // shard_phones)
    # Rounded up to a multiple of the workers: each runs as many shards (module docstring, 3).
    return workers * -(-needed // workers)


def shard_phone_count(scenario: Scenario, shard: int, shards: int) -> int:
    """How many phones shard ``shard`` of ``shards`` holds (those whose index is ``shard``
    modulo ``shards``)."""
    return len(range(shard, scenario.phone_count, shards))


def not_started(scenario: Scenario, shard: int, shards: int) -> ShardResult:
    """The result of a shard no worker started before the run was interrupted."""
    return ShardResult(
        shard=shard,
        shards=shards,
        steps=(),
        final=None,
        reasons={},
        not_started=shard_phone_count(scenario, shard, shards),
    )


def _worker(
    jobs: list[_Job], conn: Connection, counter: Synchronized[int], stop: EventType
) -> None:
    """A worker process: run its shards one after the other, sending each one's tallies (or
    its error) as ``(shard, outcome)``; once stopped, the shards left are sent as not started."""
    pending = 0
    # Ctrl-C reaches every process of the terminal's group: the parent alone answers it (one
    # line, exit 130) and asks the workers to stop through ``stop``, so no worker prints a
    # traceback and each sends the steps it finished (the partial report).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def progress(done: int) -> None:
        nonlocal pending
        pending += done
        if pending >= _BATCH:
            with counter.get_lock():
                counter.value += pending
            pending = 0
            if stop.is_set():
                raise KeyboardInterrupt  # the runner answers with the steps it finished

    try:
        for job in jobs:
            if stop.is_set():
                outcome: tuple[str, object] = ("not-started", job.shards)
            else:
                outcome = _run_shard(job, progress)
            if outcome[0] == "ok":
                with counter.get_lock():
                    counter.value += pending
                pending = 0
            conn.send((job.shard, outcome))
            if outcome[0] not in ("ok", "interrupted", "not-started"):
                break  # an error: the parent raises it and stops every worker
    finally:
        conn.close()


def _run_shard(job: _Job, progress: Callable[[int], None]) -> tuple[str, object]:
    """Load the lab, run one shard: ("ok", its result) or the error as picklable fields (the
    message a local worker sends, and what a Dask task returns: :mod:`.fleet_dask`)."""
    # Collect in batches of 10,000, not 700: a shard's phones live to its last step, and walking
    # them a few hundred times took a twentieth of a worker. The thresholds are the process's (a
    # Dask worker runs others' tasks next): restored, and the shard's garbage collected at once.
    thresholds = gc.get_threshold()
    gc.set_threshold(*_SHARD_GC_THRESHOLDS)
    try:
        return _shard_outcome(job, progress)  # its frame, and the phones, are gone here
    finally:
        gc.set_threshold(*thresholds)
        gc.collect()


def _shard_outcome(job: _Job, progress: Callable[[int], None]) -> tuple[str, object]:
    try:
        lab = load_lab(Path(job.lab_path), random=seeded_random(job.scenario.name))
        # Serve the built-in firmware from memory, as an in-memory lab does (the folder's
        # firmware/ overlay would look at the disk on every request).
        lab.firmware = catalogue_images()
        for cluster in lab.clusters:
            cluster.firmware = lab.firmware
        pools = {
            bits: [_rsa(key_from_pem(pem, None)) for pem in pems]
            for bits, pems in job.keys_pem.items()
        }
        phone_keys: KeySource = FreshKeys()
        if job.phone_keys_pem:
            phone_pool = [_rsa(key_from_pem(pem, None)) for pem in job.phone_keys_pem]
            phone_keys = PooledKeys({_LSC_BITS: phone_pool}, fallback=FreshKeys())
        runner = ScenarioRunner(
            job.scenario,
            keys=PooledKeys(pools),
            phone_keys=phone_keys,
            lab=lab,
            shard=(job.shard, job.shards),
            progress=progress,
        )
        return ("ok", runner.run())
    except RunInterrupted as exc:
        return ("interrupted", exc.partial)
    except ScenarioError as exc:
        # Exceptions with keyword-only fields do not survive pickling: send the fields.
        return ("scenario", (exc.problem, exc.path, exc.line, exc.key))
    except VphoneError as exc:
        return ("error", (str(exc), exc.exit_code))
    except Exception as exc:  # reported to the parent, which raises it
        return ("crash", f"{type(exc).__name__}: {exc}")


def _rsa(key: object) -> RSAPrivateKey:
    if not isinstance(key, RSAPrivateKey):
        raise UsageError("a pooled key handed to a worker is not an RSA key")
    return key


def run_scenario(
    scenario: Scenario,
    *,
    keys: KeySource | None = None,
    workers: int = 1,
    progress: FleetProgress | None = None,
    shard_phones: int = SHARD_PHONES,
) -> Report:
    """Run ``scenario`` over its whole fleet and return the merged report.

    Args:
        scenario: what to run (:func:`phone.scenario.load_scenario`).
        keys: the lab's RSA keys; fresh keys when omitted (tests pass a ``PooledKeys``).
        workers: processes to spread the phones over (1: this process).
        progress: called with (done, planned) phone operations as the run goes.
        shard_phones: the most phones one shard holds (module docstring): it bounds the memory
            of each worker, or of this process with ``workers=1``. The report does not depend
            on it.

    Raises:
        ScenarioError: a step the lab refuses.
        UsageError: a bad number of workers or of phones per shard.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}, not {workers}")
    source = keys if keys is not None else FreshKeys()
    total = planned_operations(scenario)
    workers = min(workers, max(1, scenario.phone_count))
    shards = shard_count(scenario, workers, shard_phones)
    if shards == 1:
        step = _Steps(total, progress)
        try:
            result = ScenarioRunner(scenario, keys=source, progress=step).run()
        except RunInterrupted as exc:
            raise FleetInterrupted(step.done, total, merge(scenario, [exc.partial])) from None
        except KeyboardInterrupt:  # before the runner ran: while the lab was being built
            raise FleetInterrupted(step.done, total) from None
        if progress is not None:
            progress(total, total)
        return merge(scenario, [result])
    return merge(
        scenario,
        _run_shards(
            scenario, source, workers=workers, shards=shards, total=total, progress=progress
        ),
    )


class _Steps:
    """The runner's progress callback in this process: counts phone operations and reports
    every :data:`_BATCH` of them to ``progress``."""

    def __init__(self, total: int, progress: FleetProgress | None) -> None:
        self.done = 0
        self.total = total
        self.progress = progress

    def __call__(self, count: int) -> None:
        self.done += count
        if self.progress is not None and self.done % _BATCH == 0:
            self.progress(self.done, self.total)


def _jobs(scenario: Scenario, keys: KeySource, shards: int, lab_path: Path) -> list[_Job]:
    """One job per shard, over the lab saved at ``lab_path``, with the keys drawn in advance."""
    pems = {
        bits: [key_to_pem(k, None, allow_unencrypted=True) for k in drawn]
        for bits, drawn in _regeneration_keys(scenario, keys).items()
    }
    # Drawn after the regeneration keys, so these never shift which keys regenerate draws.
    phone_keys = _phone_keys(scenario, keys, shards)
    phone_pems = (
        None
        if phone_keys is None
        else [key_to_pem(k, None, allow_unencrypted=True) for k in phone_keys]
    )
    return [_Job(scenario, str(lab_path), pems, s, shards, phone_pems) for s in range(shards)]


def _run_shards(
    scenario: Scenario,
    keys: KeySource,
    *,
    workers: int,
    shards: int,
    total: int,
    progress: FleetProgress | None,
) -> Sequence[ShardResult]:
    lab = build_lab(scenario, keys)
    with tempfile.TemporaryDirectory(prefix="vphone-fleet-") as folder:
        lab_path = Path(folder) / "lab"
        save_lab(lab, lab_path)
        jobs = _jobs(scenario, keys, shards, lab_path)
        del lab
        if workers == 1:
            return _run_here(scenario, jobs, total, progress)
        return _run_workers(scenario, jobs, workers, total, progress)


def _run_here(
    scenario: Scenario, jobs: list[_Job], total: int, progress: FleetProgress | None
) -> Sequence[ShardResult]:
    """The shards one after the other in this process (``workers=1``, a fleet of more phones
    than one shard holds)."""
    step = _Steps(total, progress)
    stopped = False
    results: dict[int, ShardResult] = {}
    try:
        for job in jobs:
            if stopped:
                results[job.shard] = not_started(scenario, job.shard, job.shards)
                continue
            status, payload = _run_shard(job, step)
            results[job.shard] = _result(status, payload, job.shard)
            stopped = status == "interrupted"
    except KeyboardInterrupt:  # outside a runner (a lab load): no report
        raise FleetInterrupted(min(step.done, total), total) from None
    ordered = [results[s] for s in range(len(jobs))]
    if stopped:
        raise FleetInterrupted(min(step.done, total), total, merge(scenario, ordered))
    if progress is not None:
        progress(total, total)
    return ordered


def _run_workers(
    scenario: Scenario,
    jobs: list[_Job],
    workers: int,
    total: int,
    progress: FleetProgress | None,
) -> Sequence[ShardResult]:
    context = multiprocessing.get_context("spawn")
    counter: Synchronized[int] = context.Value("q", 0)
    stop = context.Event()
    processes: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    interrupted = False
    try:
        for worker in range(workers):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker,
                args=(jobs[worker::workers], send, counter, stop),
                name=f"vphone-worker-{worker}",
            )
            with _sigint_ignored():  # a spawned child inherits it from its first instruction
                process.start()
            send.close()
            processes.append((process, receive))
        results: dict[int, ShardResult] = {}
        try:
            _collect(
                scenario,
                processes,
                results,
                len(jobs),
                counter=counter,
                total=total,
                progress=progress,
            )
        except KeyboardInterrupt:
            done = min(counter.value, total)
            report = _partial(scenario, processes, results, len(jobs), stop)
            interrupted = report is None
            raise FleetInterrupted(done, total, report) from None
        if progress is not None:
            progress(total, total)
        return [results[s] for s in range(len(jobs))]
    except FleetInterrupted:
        raise
    except KeyboardInterrupt:  # while the workers were starting: nothing ran yet
        interrupted = True
        raise FleetInterrupted(min(counter.value, total), total) from None
    finally:
        for started, conn in processes:
            conn.close()
            started.join(timeout=0 if interrupted else 5)
            if started.is_alive():  # only after an error elsewhere: do not leave it behind
                started.terminate()
                started.join()


def _collect(
    scenario: Scenario,
    processes: Sequence[tuple[multiprocessing.process.BaseProcess, Connection]],
    results: dict[int, ShardResult],
    shards: int,
    *,
    counter: Synchronized[int] | None = None,
    total: int = 0,
    progress: FleetProgress | None = None,
    deadline: float | None = None,
) -> None:
    """Wait for every shard's result (until ``deadline`` on the monotonic clock, if given).

    Worker ``w`` of N sends the results of shards ``w``, ``w + N``... in that order.
    """
    workers = len(processes)
    owed = [
        sum(1 for s in range(index, shards, workers) if s not in results)
        for index in range(workers)
    ]
    while len(results) < shards:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError
        for index, (process, conn) in enumerate(processes):
            if not owed[index]:
                continue  # this worker has sent every result it owes
            if conn.poll(_POLL_SECONDS / workers):
                shard, result = _receive(conn, index, scenario)
                results[shard] = result
                owed[index] -= 1
            elif not process.is_alive() and not conn.poll():
                raise ScenarioError(
                    f"worker {index} ended with exit code {process.exitcode} and no result",
                    path=scenario.path,
                )
        if progress is not None and counter is not None:
            progress(min(counter.value, total), total)


def _partial(
    scenario: Scenario,
    processes: Sequence[tuple[multiprocessing.process.BaseProcess, Connection]],
    results: dict[int, ShardResult],
    shards: int,
    stop: EventType,
) -> Report | None:
    """After Ctrl-C: ask the workers to stop and merge what they finished, or None.

    Each worker stops at its next batch of phone operations and sends the steps it finished
    (or its whole result, if it was done), and its shards not yet started as such. None when a
    worker does not answer within :data:`_STOP_SECONDS`, fails, or a second Ctrl-C comes: then
    there is no partial report.
    """
    stop.set()
    try:
        _collect(scenario, processes, results, shards, deadline=time.monotonic() + _STOP_SECONDS)
    except (KeyboardInterrupt, TimeoutError, VphoneError):
        return None
    return merge(scenario, [results[s] for s in range(shards)])


class _sigint_ignored:
    """Ignore SIGINT while starting a worker (main thread only: Python's rule for signals)."""

    def __enter__(self) -> None:
        self.saved = None
        if threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            signal.signal(signal.SIGINT, self.saved)


def _receive(conn: Connection, worker: int, scenario: Scenario) -> tuple[int, ShardResult]:
    try:
        shard, (status, payload) = conn.recv()
    except EOFError:
        raise ScenarioError(
            f"worker {worker} ended without a result (a script that runs workers must keep its "
            "work under `if __name__ == '__main__':`, since spawned workers import it again)"
        ) from None
    if status == "not-started":
        return shard, not_started(scenario, shard, int(payload))
    return shard, _result(status, payload, shard)


def _result(status: str, payload: Any, shard: int) -> ShardResult:  # noqa: ANN401 (pickled)
    """The shard's result from :func:`_run_shard`'s outcome, or its error raised."""
    if status in ("ok", "interrupted") and isinstance(payload, ShardResult):
        return payload
    if status == "scenario":
        problem, path, line, key = payload
        raise ScenarioError(problem, path=path, line=line, key=key)
    if status == "error":
        message, exit_code = payload
        error = VphoneError(message)
        error.exit_code = exit_code
        raise error
    raise ScenarioError(f"worker {shard} failed: {payload}")


# The names a regenerate step accepts come from the parser; keep the planner in step with it.
assert {"callmanager", "tvs", "tomcat"} < set(CERT_KINDS)
