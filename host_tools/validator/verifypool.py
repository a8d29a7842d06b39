"""Processes that check P-256 signatures for a validator worker (host_tools.validator.workers).

Each process reads chunks [(public key SPKI DER, signed bytes, DER signature), ...] from its own
pipe and answers each with a list of verdicts, in order. The worker writes to the pipes and
reads the answers itself, with no thread in between: concurrent.futures' process pool moves
every chunk through a manager thread and a feeder thread, which cost the worker more CPU per
receipt than its ack and its commit together. The pipes are enlarged (F_SETPIPE_SZ) so that a
whole batch's chunks fit: writing them does not wait for the process to read.

A process that fails (killed, out of memory) gives no verdict: result() returns None for every
chunk it had not answered, the caller checks those signatures itself, and the process is
replaced at the next submit.
"""
from __future__ import annotations

import fcntl
import logging
import multiprocessing
import pickle
from typing import Any, Dict, List, Optional, Tuple

from host_tools.verify import sigcheck

Triple = Tuple[bytes, bytes, bytes]
Ticket = Tuple[int, int, int]        # (process slot, its generation, chunk number in that process)
PIPE_BYTES = 1 << 20                  # Linux's default pipe-max-size; a 128-receipt batch is ~300 KB

_log = logging.getLogger("chargeproof.validator.verifypool")


def _serve(requests: Any, answers: Any, inherited: List[Any]) -> None:
    """In the process: verdicts for each chunk, until the worker closes its end."""
    for conn in inherited:               # the worker's ends: EOF must come when the worker dies
        conn.close()
    while True:
        try:
            chunk = pickle.loads(requests.recv_bytes())
        except (EOFError, OSError):
            return
        answers.send_bytes(pickle.dumps([sigcheck.verify_fast(p, m, s) for p, m, s in chunk]))


def _enlarge(conn: Any) -> None:
    try:
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (OSError, AttributeError):     # not Linux, or above the limit: writes may wait
        pass


class _Proc:
    def __init__(self, generation: int, others: List[Any]) -> None:
        ctx = multiprocessing.get_context("fork")
        req_r, self.requests = ctx.Pipe(duplex=False)
        self.answers, ans_w = ctx.Pipe(duplex=False)
        _enlarge(self.requests)
        _enlarge(ans_w)
        self.process = ctx.Process(target=_serve, args=(req_r, ans_w, others + [self.requests, self.answers]),
                                   daemon=True, name="verify")
        self.process.start()
        req_r.close()
        ans_w.close()
        self.generation = generation
        self.sent = 0                      # chunks written
        self.read = 0                      # answers read
        self.answered: Dict[int, List[bool]] = {}
        self.failed = False

    def close(self) -> None:
        for conn in (self.requests, self.answers):
            try:
                conn.close()
            except OSError:
                pass
        self.process.join(1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)


class VerifyPool:
    """`procs` signature processes, started at the first submit."""

    def __init__(self, procs: int) -> None:
        if procs < 1:
            raise ValueError("a verify pool needs at least one process")
        self.procs = procs
        self._slots: List[Optional[_Proc]] = [None] * procs
        self._generation = 0
        self._next = 0

    def _proc(self, slot: int) -> _Proc:
        proc = self._slots[slot]
        if proc is None or proc.failed:
            if proc is not None:
                proc.close()
            self._generation += 1
            others = [c for p in self._slots if p is not None and p is not proc for c in (p.requests, p.answers)]
            proc = self._slots[slot] = _Proc(self._generation, others)
        return proc

    def submit(self, chunk: List[Triple]) -> Optional[Ticket]:
        """Hand a chunk to the next process; None if none could take it (check it yourself)."""
        slot = self._next
        self._next = (slot + 1) % self.procs
        try:
            proc = self._proc(slot)
            proc.requests.send_bytes(pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL))
        except (OSError, ValueError) as exc:
            _log.warning("signature process unusable (%r): replaced", exc)
            broken = self._slots[slot]
            if broken is not None:
                broken.failed = True
            return None
        proc.sent += 1
        return slot, proc.generation, proc.sent - 1

    def result(self, ticket: Ticket) -> Optional[List[bool]]:
        """The verdicts on the chunk of this ticket (waiting for them), or None if its process
        failed before answering."""
        slot, generation, number = ticket
        proc = self._slots[slot]
        if proc is None or proc.generation != generation:
            return None                      # replaced since: its answers are gone
        while number not in proc.answered and not proc.failed:
            try:
                proc.answered[proc.read] = pickle.loads(proc.answers.recv_bytes())
                proc.read += 1
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                _log.warning("signature process failed (%r): its chunks are checked in the worker", exc)
                proc.failed = True
        return proc.answered.pop(number, None)

    def close(self) -> None:
        for i, proc in enumerate(self._slots):
            if proc is not None:
                proc.close()
                self._slots[i] = None

    def pids(self) -> List[int]:
        """The running processes' ids (for tests that kill one)."""
        return [p.process.pid for p in self._slots if p is not None and p.process.pid is not None]
