"""Speed machinery: what makes ``civharm validate`` fast on a large package, and nothing else.

The stages are written plainly; this module alone knows about a second process, threads (a
warm-up import, typing columns two at a time), the cycle collector and how the ``civharm``
process leaves. None of it changes a
result, only how long a run takes (``tests/test_speed.py`` validates the same packages with
it on and off and compares the reports). What each piece saves, measured, is in
``benchmarks/README.md`` ("Speed machinery"); a piece that stops paying for itself goes.

The switch: ``CIVHARM_SPEED=0`` in the environment, or ``civharm validate --no-speed``, turns
every piece off; the run is then one process and one thread, collector on, plain exit.
"""
from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from .findings import CivharmError, Finding

ENV_SWITCH = "CIVHARM_SPEED"
OFF_WORDS = ("0", "off", "false", "no")
# Below this many rows a second process costs more than it saves (fork, transfer of findings).
TWO_PROCESSES_FROM_ROWS = 200_000

_switched: bool | None = None  # set by ``switch`` (the CLI option); None: the environment decides
T = TypeVar("T")


def enabled() -> bool:
    """Whether the speed machinery is on: ``switch``'s choice, else ``CIVHARM_SPEED`` (on unless 0/off/false/no)."""
    if _switched is not None:
        return _switched
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in OFF_WORDS


def switch(on: bool | None) -> None:
    """Turn the machinery on or off for this process (None: back to the environment's choice)."""
    global _switched
    _switched = on


@contextmanager
def switched(on: bool | None) -> Iterator[None]:
    """``switch(on)`` for the block only (a command run in a caller's process leaves it as it was)."""
    before = _switched
    switch(on)
    try:
        yield
    finally:
        switch(before)


# --- the cycle collector ---------------------------------------------------------------------


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector for a run.

    A large package means 10⁵–10⁶ long-lived Python objects; each burst of allocations made
    the collector walk them all again. The run's memory is bounded by the package and the
    collector resumes when the run ends.
    """
    if not enabled():
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled and not _leaving:
            gc.enable()


# --- work spread over threads ----------------------------------------------------------------

# Below this many rows, threads cost more than they save.
THREADED_FROM_ROWS = 50_000


def mapped(function: Callable[[object], T], items: list, rows: int) -> list[T]:
    """``[function(item) for item in items]``; with the machinery on and ``rows`` at least
    THREADED_FROM_ROWS, on two threads (for work that is mostly Arrow kernels, which leave the
    interpreter to the other thread). The threads end before it returns, so before any fork."""
    if not enabled() or rows < THREADED_FROM_ROWS:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(function, items))


# --- two workloads at once ---------------------------------------------------------------------


def both(rows: int, first: Callable[[], T], second: Callable[[], list[Finding]],
         processes: int | None = None, prepare: Callable[[], None] | None = None,
         warm_up: tuple[str, ...] = ()) -> tuple[T, list[Finding]]:
    """``(first(), second())``: two independent workloads, the second's result a list of findings.

    With the machinery on, ``second`` runs in a forked copy of this process (sharing what is
    loaded, copy-on-write) while this one runs ``first``, for a package of ``rows`` rows or
    more than TWO_PROCESSES_FROM_ROWS, or as ``processes`` (1 or 2) asks; ``prepare`` runs
    before the fork (what both sides read, computed once), and the modules in ``warm_up`` are
    imported on a thread beside ``first``. Off, or on a system without fork: one after the other.
    """
    if not enabled():
        return first(), second()
    child = None
    if _processes(rows, processes) == 2:
        if prepare is not None:
            prepare()
        child = _forked(second)  # before any thread of ours starts: a fork copies one thread
    for module in warm_up:
        threading.Thread(target=_import_quietly, args=(module,), daemon=True).start()
    if child is None:
        return first(), second()
    try:
        return first(), child.result()
    except BaseException:
        child.stop()
        raise


def _import_quietly(module: str) -> None:
    try:
        __import__(module)
    except Exception:  # noqa: BLE001 - the code that needs it imports it again and reports the failure properly
        pass


def _processes(rows: int, asked: int | None) -> int:
    """How many processes to use: as asked, else two for a large package on a machine with two cores."""
    if not hasattr(os, "fork"):  # Windows: one process
        return 1
    if asked is not None:
        return 2 if asked >= 2 else 1
    return 2 if rows >= TWO_PROCESSES_FROM_ROWS and (os.cpu_count() or 1) >= 2 else 1


class _Child:
    """A forked process computing findings: ``result()`` waits for them, ``stop()`` ends it early."""

    def __init__(self, pid: int, read_end: int):
        self.pid = pid
        self.received: list[bytes] = []
        # The pipe is drained on a thread, so a large result cannot block the child.
        self.reader = threading.Thread(target=self._drain, args=(read_end,), daemon=True)
        self.reader.start()

    def _drain(self, read_end: int) -> None:
        with os.fdopen(read_end, "rb") as pipe:
            self.received.append(pipe.read())

    def result(self) -> list[Finding]:
        self.reader.join()
        _, status = os.waitpid(self.pid, 0)
        if not self.received or not self.received[0]:
            raise CivharmError(f"the second validation process ended without a result (exit status {os.waitstatus_to_exitcode(status)})")
        kind, value = pickle.loads(self.received[0])
        if kind == "raised":
            raise value
        return list(map(Finding._make, value))

    def stop(self) -> None:
        """Kill and reap the child (the first process failed; its result is not needed)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _forked(work: Callable[[], list[Finding]]) -> _Child:
    """Start ``work`` in a forked child; it sends its findings as plain tuples (or its exception)
    through a pipe and leaves with ``os._exit``, so it never runs the parent's exit handlers."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 0
        try:
            os.close(read_end)
            try:
                payload = ("ok", [tuple(f) for f in work()])
            except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
                payload = ("raised", exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}"))
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(payload, pipe, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 - the parent reports a child that sent nothing
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    return _Child(pid, read_end)


def _picklable(value: object) -> bool:
    try:
        pickle.loads(pickle.dumps(value))
        return True
    except Exception:  # noqa: BLE001 - any failure means "send a description instead"
        return False


# --- leaving the process -----------------------------------------------------------------------

_leaving = False  # set by ``leaving_after_command``: this process ends when the command does


def leaving_after_command() -> None:
    """Say that this process ends with the command (the ``civharm`` console script; not so
    under CliRunner or in a caller's process), so ``leave`` may skip the interpreter's teardown
    and the collector need not resume before it."""
    global _leaving
    _leaving = True


def leave_now(code: int) -> None:
    """In the ``civharm`` process with the machinery on, flush and end it here with ``os._exit``:
    the interpreter's teardown would free every object of a large run one by one, only to hand
    memory back to an exiting process. Every file was written and closed before this point
    (atomic writes). Anywhere else it returns, and the caller exits as usual."""
    if _leaving and enabled():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can be said
                code = code or 1
        os._exit(code)
