"""Fleets beyond one machine: the shards of :mod:`phone.scenario.fleet` as tasks on a Dask
cluster (issue 17 item 6; docs/scaling.md).

``vphone scenario run --scheduler tcp://HOST:8786`` (or ``DASK_SCHEDULER_ADDRESS``) runs the
same shards as the local worker processes, on whatever machines the cluster's workers run on:

1. this process builds the lab once and draws the regeneration keys, as for local workers;
2. the lab folder (a few hundred kilobytes: ``cluster.json`` and the key files) is sent once
   to every Dask worker as bytes, since the workers share no disk with this machine; each task
   writes it to a private temporary folder and loads it;
3. shard ``i`` of ``N`` runs the phones whose index is ``i`` modulo ``N``, exactly the code a
   local worker runs (:func:`phone.scenario.fleet._run_shard`); ``N`` is at least the fleet's
   phones over :data:`phone.scenario.fleet.SHARD_PHONES`, rounded up to a multiple of the
   workers (:func:`~phone.scenario.fleet.shard_count`), so one task's memory stays bounded
   and the scheduler spreads a large fleet evenly over many tasks;
4. the tallies come back and are merged by addition in shard order, so the report is
   byte-identical to a local run with any number of workers.

Progress: each task adds the phone operations it finished to a Dask ``Queue`` at most every
:data:`_PROGRESS_SECONDS`; this process drains it while it waits. Ctrl-C sets a Dask ``Event``
the tasks read at the same moments: each returns the steps it finished, and the partial report
is merged as for local workers (:class:`phone.scenario.fleet.FleetInterrupted`).

Dask workers must have vphone installed (the same version: the tasks import
``phone.scenario.fleet``). ``distributed`` is an optional extra (``pip install 'vphone[dask]'``);
without it, asking for a scheduler is a clear error and local processes stay the default.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from phone.cluster.store import save_lab
from phone.errors import UsageError, VphoneError
from phone.pki import FreshKeys, KeySource, key_to_pem
from phone.scenario.fleet import (
    _STOP_SECONDS,
    MAX_WORKERS,
    SHARD_PHONES,
    FleetInterrupted,
    FleetProgress,
    _Job,
    _phone_keys,
    _regeneration_keys,
    _result,
    _run_shard,
    not_started,
    planned_operations,
    shard_count,
)
from phone.scenario.model import Scenario
from phone.scenario.report import Report, merge
from phone.scenario.runner import ShardResult, build_lab

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["dask_client", "run_on_dask", "run_scenario_on_dask"]

_PROGRESS_SECONDS = 0.5
_CONNECT_SECONDS = 10.0


def _distributed() -> ModuleType:
    try:
        import distributed  # noqa: PLC0415 (the optional extra)
    except ImportError:
        raise UsageError(
            "running on a Dask scheduler needs the `distributed` package: "
            "pip install 'vphone[dask]' (or run without --scheduler: local processes)"
        ) from None
    return distributed


def dask_client(address: str) -> Client:
    """A ``distributed.Client`` connected to the scheduler at ``address``.

    Raises:
        UsageError: ``distributed`` is not installed, or the scheduler cannot be reached.
    """
    distributed = _distributed()
    try:
        client: Client = distributed.Client(address, timeout=_CONNECT_SECONDS, set_as_default=False)
        return client
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def _lab_files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _task(
    job: _Job, files: dict[str, bytes], queue_name: str, stop_name: str
) -> tuple[str, object]:
    """A Dask task: write the lab folder, run one shard, return its outcome (the steps it
    finished, when the client set the stop event after Ctrl-C)."""
    distributed = _distributed()
    queue = distributed.Queue(queue_name)
    stop = distributed.Event(stop_name)
    pending = 0
    last = time.monotonic()

    def progress(done: int) -> None:
        nonlocal pending, last
        pending += done
        if time.monotonic() - last >= _PROGRESS_SECONDS:
            queue.put(pending)
            pending, last = 0, time.monotonic()
            if stop.is_set():  # a round trip to the scheduler: at most every _PROGRESS_SECONDS
                raise KeyboardInterrupt  # the runner answers with the steps it finished

    if stop.is_set():  # queued behind other tasks until after Ctrl-C: the client merges without it
        return ("not-started", job.shards)
    with tempfile.TemporaryDirectory(prefix="vphone-dask-") as folder:
        for name, data in files.items():
            target = Path(folder) / "lab" / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            target.write_bytes(data)
        outcome = _run_shard(
            _Job(
                job.scenario,
                str(Path(folder) / "lab"),
                job.keys_pem,
                job.shard,
                job.shards,
                job.phone_keys_pem,
            ),
            progress,
        )
    if pending:
        queue.put(pending)
    return outcome


def run_scenario_on_dask(
    scenario: Scenario,
    scheduler: str,
    *,
    keys: KeySource | None = None,
    workers: int = 1,
    progress: FleetProgress | None = None,
    shard_phones: int = SHARD_PHONES,
) -> Report:
    """:func:`phone.scenario.fleet.run_scenario` with its shards on the Dask cluster whose
    scheduler is at ``scheduler`` (``tcp://HOST:8786``): ``workers`` shards, or one per worker
    thread of the cluster when ``workers`` is 1. The report is the local run's, byte for byte.

    Raises:
        ScenarioError: a step the lab refuses.
        UsageError: a bad number of workers; ``distributed`` not installed; the scheduler
            cannot be reached.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}, not {workers}")
    source = keys if keys is not None else FreshKeys()
    total = planned_operations(scenario)
    return merge(
        scenario,
        run_on_dask(
            scenario,
            source,
            scheduler,
            workers=workers,
            total=total,
            progress=progress,
            shard_phones=shard_phones,
        ),
    )


def run_on_dask(
    scenario: Scenario,
    keys: KeySource,
    address: str,
    *,
    workers: int,
    total: int,
    progress: FleetProgress | None,
    shard_phones: int = SHARD_PHONES,
) -> Sequence[ShardResult]:
    """Run the shards of ``scenario`` on the Dask cluster at ``address`` (module docstring):
    ``workers`` shards, or one per worker thread of the cluster when ``workers`` is 1, or the
    next multiple of that so that none holds more than ``shard_phones`` phones."""
    client: Any = dask_client(address)  # distributed is only partly typed
    try:
        distributed = _distributed()
        shards = workers
        if shards == 1:
            shards = max(1, sum(client.nthreads().values()))
        shards = shard_count(
            scenario, min(shards, MAX_WORKERS, max(1, scenario.phone_count)), shard_phones
        )
        lab = build_lab(scenario, keys)
        pems = {
            bits: [key_to_pem(k, None, allow_unencrypted=True) for k in drawn]
            for bits, drawn in _regeneration_keys(scenario, keys).items()
        }
        phone_keys = _phone_keys(scenario, keys, shards)
        phone_pems = (
            None
            if phone_keys is None
            else [key_to_pem(k, None, allow_unencrypted=True) for k in phone_keys]
        )
        with tempfile.TemporaryDirectory(prefix="vphone-fleet-") as folder:
            save_lab(lab, Path(folder) / "lab")
            files = _lab_files(Path(folder) / "lab")
        run_id = uuid.uuid4().hex
        queue_name = f"vphone-progress-{run_id}"
        stop_name = f"vphone-stop-{run_id}"
        queue = distributed.Queue(queue_name, client=client)
        stop = distributed.Event(stop_name, client=client)
        shared = client.scatter(files, broadcast=True)
        futures = [
            client.submit(
                _task,
                _Job(scenario, "", pems, shard, shards, phone_pems),
                shared,
                queue_name,
                stop_name,
                key=f"vphone-shard-{shard}-of-{shards}-{queue_name}",
                pure=False,
            )
            for shard in range(shards)
        ]
        done = 0
        try:
            while not all(f.done() for f in futures):
                time.sleep(0.1)
                for count in queue.get(batch=True):
                    done += int(count)
                if progress is not None:
                    progress(min(done, total), total)
        except KeyboardInterrupt:
            # As local workers do: every task stops at its next progress report and returns
            # the steps it finished; a second Ctrl-C or a silent task means no report.
            stop.set()
            try:
                deadline = time.monotonic() + _STOP_SECONDS
                while not all(f.done() for f in futures):
                    if time.monotonic() > deadline:
                        raise TimeoutError
                    time.sleep(0.1)
                outcomes = client.gather(futures)
                results = [
                    not_started(scenario, s, shards) if st == "not-started" else _result(st, p, s)
                    for s, (st, p) in enumerate(outcomes)
                ]
                report = merge(scenario, results)
            except (KeyboardInterrupt, TimeoutError, VphoneError):
                report = None
            raise FleetInterrupted(min(done, total), total, report) from None
        if progress is not None:
            progress(total, total)
        outcomes = client.gather(futures)
        return [_result(status, payload, s) for s, (status, payload) in enumerate(outcomes)]
    finally:
        client.close()
