"""Designer code in worker processes with hard limits (issue 13).

engine/restricted.py stops what RestrictedPython and a trace function can stop. What they cannot
(work inside one C call such as ``10**10**10``, ``'x' * 10**10``, a template that renders 1.9 GB)
is stopped here, by the kernel and by the parent:

* each worker is a fresh interpreter (``python -I``, empty environment, cwd ``/``): it holds none
  of the server's memory, secrets or database connections. Before its first request it lowers its
  own ``RLIMIT_AS`` (allocations beyond it raise MemoryError), and before each request it sets
  ``RLIMIT_CPU`` a little past the call's time limit (the kernel stops a runaway);
* the parent waits for the answer with a wall-clock deadline and SIGKILLs the worker when it
  passes, when the worker dies, or after a MemoryError; a replacement starts in the background;
* only data crosses the pipes: length-prefixed JSON, with the typed dicts SpiffWorkflow's
  serializer writes for datetimes, timedeltas and UUIDs (so values look the same as in a stored
  instance). Nothing a worker sends is unpickled or evaluated; exceptions come back as a type
  name, looked up among the builtins and the engine's own ScriptError family;
* helpers (functions the platform offers to scripts) stay in the parent: a worker asks for one by
  name with data arguments, the parent runs it and answers with data. Its time is off the clock.

A pool keeps idle workers for reuse (a call costs a pipe round trip, not a process start), grows
to a bound, and makes callers wait (bounded) for a free worker. It is shared by threads, and a
forked child (e.g. a pre-forking web server) forgets its parent's workers and starts its own.
"""
from __future__ import annotations

import builtins
import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from . import errors
from .errors import ScriptError, ScriptLimit, ScriptMemory, ScriptTimeout
from .restricted import describe

__all__ = ["DEFAULT_MEMORY", "DEFAULT_RESULT", "WorkerPool", "kill_after", "serve", "shared_pool"]

MiB = 1024 * 1024
DEFAULT_MEMORY = 256 * MiB
DEFAULT_RESULT = 1 * MiB
DEFAULT_WORKERS = 4
DEFAULT_WAIT = 10.0
# A worker that has not said it is ready by then is broken (an import error, a machine in trouble).
_START_TIMEOUT = 30.0
_HEADER = struct.Struct(">I")
_EXIT_OUT_OF_MEMORY = 3


def kill_after(time_limit: float) -> float | None:
    """How long the parent waits before it kills the worker: the limit plus a margin, so that the
    worker's own (precise, cheap) time-out fires first whenever Python code is running."""
    if not time_limit or time_limit <= 0:
        return None
    return time_limit + max(0.5, time_limit / 2)


# --------------------------------------------------------------------------------- wire format


def _to_wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"typename": "datetime", "value": value.isoformat()}
    if isinstance(value, timedelta):
        # The shape SpiffWorkflow's DefaultRegistry writes (it keeps days and seconds).
        return {"typename": "timedelta", "days": value.days, "seconds": value.seconds}
    if isinstance(value, UUID):
        return {"typename": "UUID", "value": str(value)}
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be kept in task data")


def _from_wire(dct: dict) -> Any:
    kind = dct.get("typename")
    if kind is None:
        return dct
    try:
        if kind == "datetime":
            return datetime.fromisoformat(dct["value"])
        if kind == "timedelta":
            return timedelta(days=dct["days"], seconds=dct["seconds"])
        if kind == "UUID":
            return UUID(dct["value"])
    except (KeyError, TypeError, ValueError):
        pass
    return dct


# Made once: json.dumps/loads with options build a new encoder or decoder on every call.
_encoder = json.JSONEncoder(default=_to_wire, ensure_ascii=False, separators=(",", ":"))
_decoder = json.JSONDecoder(object_hook=_from_wire)


def encode(message: Any) -> bytes:
    return _encoder.encode(message).encode("utf-8")


def decode(payload: bytes) -> Any:
    return _decoder.decode(payload.decode("utf-8"))


class _Reader:
    """Frames from one pipe. A read takes whatever is there (usually a whole frame: the two ends
    take turns), so a call costs one poll and one read rather than one per header and body."""

    def __init__(self, fd: int, timed: bool = True):
        self.fd = fd
        self.buffer = bytearray()
        self.poller = None
        if timed:
            # poll, not select: a busy server's descriptors can be numbered past select's 1024.
            self.poller = select.poll()
            self.poller.register(fd, select.POLLIN)

    def frame(self, deadline: float | None = None, limit: int | None = None) -> bytes | None:
        """The next frame, None at end of file; TimeoutError once `deadline` passes."""
        size = None
        while True:
            if size is None and len(self.buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self.buffer)
                if limit is not None and size > limit:
                    raise _Oversized(size)
            if size is not None and len(self.buffer) >= _HEADER.size + size:
                payload = bytes(self.buffer[_HEADER.size:_HEADER.size + size])
                del self.buffer[:_HEADER.size + size]
                return payload
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not self.poller.poll(max(1, math.ceil(left * 1000))):
                    raise TimeoutError
            chunk = os.read(self.fd, 1 << 16 if size is None else max(1 << 16, _HEADER.size + size - len(self.buffer)))
            if not chunk:
                return None
            self.buffer += chunk


def _write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


class _Oversized(Exception):
    pass


# ---------------------------------------------------------------------------------- exceptions

_OURS: dict[str, type[ScriptError]] = {cls.__name__: cls for cls in (
    errors.ScriptError, errors.ScriptTimeout, errors.ScriptForbidden, errors.ScriptMemory, errors.ScriptLimit)}


def _builtin_exception(name: str) -> type[Exception] | None:
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, Warning):
        return cls
    return None


def exception_to_wire(err: BaseException, line: int | None = None) -> dict:
    args = list(err.args)
    try:
        encode(args)
    except (TypeError, ValueError, RecursionError):
        args = [str(err)]
    return {"type": type(err).__name__, "message": describe(err, with_type=False), "args": args,
            "line": getattr(err, "line", None) or line}


def exception_from_wire(wire: Any) -> Exception:
    """The exception a worker reported, rebuilt from its name: only the ScriptError family and
    builtin exception classes are ever instantiated, whatever the name says."""
    if not isinstance(wire, dict):
        return ScriptError("the script worker sent an unreadable error")
    name, message, line = str(wire.get("type")), str(wire.get("message", "")), wire.get("line")
    line = line if isinstance(line, int) else None
    if name in _OURS:
        return _OURS[name](message, line)
    cls = _builtin_exception(name)
    if cls is not None:
        args = wire.get("args") if isinstance(wire.get("args"), list) else [message]
        try:
            err = cls(*args)
        except Exception:  # noqa: BLE001 - constructors with fixed signatures (UnicodeDecodeError, ...)
            err = ScriptError(f"{name}: {message}", line)
        err.line = line
        return err
    return ScriptError(f"{name[:80]}: {message}", line)


# ------------------------------------------------------------------------------- parent side

_ROOT = str(Path(__file__).resolve().parent.parent)
# -I: no PYTHON* variables, no user site, no current directory on sys.path; the engine package is
# put first explicitly, so the worker runs this very checkout's code.
_BOOT = f"import sys; sys.path.insert(0, {_ROOT!r}); from engine.isolation import serve; serve()"


class _Lost(Exception):
    """The worker is gone or had to be killed; `error` is what the caller is told."""

    def __init__(self, error: ScriptError, retry: bool = False):
        super().__init__(error.message)
        self.error = error
        # True when the worker had died before it got the request (killed from outside while idle).
        self.retry = retry


class _Worker:
    def __init__(self, memory: int):
        self.memory = memory
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT, str(memory)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, cwd="/",
                env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"}, close_fds=True, start_new_session=True,
            )
        except OSError as err:  # no more processes or descriptors
            raise ScriptError(f"no script worker process could be started: {err.strerror or err}") from None
        self.to_worker = self.process.stdin.fileno()
        self.from_worker = self.process.stdout.fileno()
        self.reader = _Reader(self.from_worker)
        try:
            hello = decode(self.reader.frame(time.monotonic() + _START_TIMEOUT, 1024))
        except (TimeoutError, _Oversized, TypeError, ValueError):
            hello = None
        if not isinstance(hello, dict) or hello.get("ready") != self.process.pid:
            self.kill()
            raise ScriptError("the script worker process did not start")

    def exchange(self, request: bytes, helpers: Mapping[str, Callable], time_limit: float,
                 result_limit: int) -> dict:
        """Send one request and answer the worker's helper calls until it replies."""
        wait = kill_after(time_limit)
        try:
            _write_frame(self.to_worker, request)
        except OSError:
            raise _Lost(ScriptError("the script worker process had stopped"), retry=True) from None
        deadline = time.monotonic() + wait if wait is not None else None
        while True:
            try:
                # The margin covers the reply's own envelope; the worker checks the limit itself.
                frame = self.reader.frame(deadline, result_limit + 64 * 1024)
            except TimeoutError:
                self.kill()
                raise _Lost(ScriptTimeout(f"script exceeded the time limit of {time_limit:g} s and was stopped")) from None
            except _Oversized as too_big:
                self.kill()
                raise _Lost(ScriptLimit(f"the script's result is too large ({too_big.args[0]:,} bytes)")) from None
            if frame is None:
                raise _Lost(self._death())
            try:
                message = decode(frame)
            except (TypeError, ValueError, RecursionError):
                message = None
            if not isinstance(message, dict):
                self.kill()
                raise _Lost(ScriptError("the script worker sent an unreadable answer"))
            if "call" not in message:
                return message
            began = time.monotonic()
            answer = _run_helper(helpers, message)
            try:
                _write_frame(self.to_worker, answer)
            except OSError:
                raise _Lost(self._death()) from None
            if deadline is not None:
                deadline += time.monotonic() - began

    def _death(self) -> ScriptError:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        self._close()
        if code == -signal.SIGXCPU:
            return ScriptTimeout("script exceeded its CPU time limit and was stopped")
        if code == _EXIT_OUT_OF_MEMORY:
            return ScriptMemory(f"script exceeded the memory limit of {self.memory // MiB} MiB")
        return ScriptError(f"the script stopped its worker process (exit status {code})")

    def kill(self) -> None:
        try:
            self.process.kill()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self._close()

    def abandon(self) -> None:
        """In a forked child: the worker belongs to the parent, so only let go of our pipe ends."""
        self._close()

    def _close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


def _run_helper(helpers: Mapping[str, Callable], message: dict) -> bytes:
    name, args, kwargs = message.get("call"), message.get("args"), message.get("kwargs")
    helper = helpers.get(name) if isinstance(name, str) else None
    if helper is None or not isinstance(args, list) or not isinstance(kwargs, dict):
        return encode({"error": exception_to_wire(NameError(f"name {name!r} is not defined"))})
    try:
        result = helper(*args, **kwargs)
        return encode({"ok": result})
    except Exception as err:  # noqa: BLE001 - a failing helper fails the script, as it would in-process
        return encode({"error": exception_to_wire(err)})


class WorkerPool:
    """Up to `size` worker processes with `memory` bytes of address space each."""

    def __init__(self, memory: int = DEFAULT_MEMORY, size: int = DEFAULT_WORKERS, wait: float = DEFAULT_WAIT):
        self.memory = memory
        self.size = max(1, size)
        self.wait = wait
        self._reset()

    def _reset(self) -> None:
        # Bumped when a forked child forgets its parent's workers; a worker of an older generation
        # that comes back from a call made across the fork is not ours to keep.
        self._generation = getattr(self, "_generation", 0) + 1
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        self._idle: list[_Worker] = []
        self._count = 0

    # -- what callers use ------------------------------------------------------------------------
    def call(self, request: dict, helpers: Mapping[str, Callable] | None = None, time_limit: float = 2.0,
             result_limit: int = DEFAULT_RESULT) -> dict:
        """Run one request in a worker; the worker's reply (``{"ok": …}``, ``{"data": …}`` or
        ``{"error": …}``). Raises ScriptError when the worker had to be stopped."""
        payload = encode({**request, "time": time_limit, "result": result_limit, "memory": self.memory})
        for attempt in (1, 2):
            worker = self._acquire()
            try:
                reply = worker.exchange(payload, helpers or {}, time_limit, result_limit)
            except _Lost as lost:
                self._discard()
                # A worker that died while idle (killed from outside) did not run this request.
                if attempt == 1 and lost.retry:
                    continue
                raise lost.error from None
            except BaseException:
                worker.kill()
                self._discard()
                raise
            if reply.get("retire"):
                worker.kill()
                self._discard()
            else:
                self._release(worker)
            return reply
        raise AssertionError("unreachable")

    def warm(self, count: int = 1) -> None:
        """Start workers in the background until `count` are idle (or the pool is full)."""
        with self._lock:
            missing = min(count - len(self._idle), self.size - self._count)
            self._count += max(missing, 0)
        for _ in range(max(missing, 0)):
            threading.Thread(target=self._start_reserved, name="inkless-script-worker", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.kill()

    @property
    def idle(self) -> int:
        return len(self._idle)

    # -- bookkeeping -------------------------------------------------------------------------------
    def _forget(self) -> None:
        for worker in self._idle:
            worker.abandon()
        self._reset()

    def _acquire(self) -> _Worker:
        with self._free:
            end = time.monotonic() + self.wait
            while not self._idle and self._count >= self.size:
                left = end - time.monotonic()
                if left <= 0:
                    raise ScriptLimit(f"all {self.size} script workers stayed busy for {self.wait:g} s; "
                                      "try again later")
                self._free.wait(left)
            if self._idle:
                return self._idle.pop()
            self._count += 1
        return self._start()

    def _start(self) -> _Worker:
        generation = self._generation
        try:
            worker = _Worker(self.memory)
        except BaseException:
            self._discard(replace=False)
            raise
        worker.generation = generation
        return worker

    def _start_reserved(self) -> None:
        try:
            worker = self._start()
        except Exception:  # noqa: BLE001 - the next caller starts one itself and sees the error
            return
        self._release(worker)

    def _release(self, worker: _Worker) -> None:
        with self._free:
            if worker.generation != self._generation:
                worker.abandon()
                return
            self._idle.append(worker)
            self._free.notify()

    def _discard(self, replace: bool = True) -> None:
        """One worker fewer; start a replacement so the next call does not wait for a process start."""
        with self._free:
            self._count -= 1
            self._free.notify()
        if replace:
            self.warm(1)


_pools: dict[int, WorkerPool] = {}
_pools_lock = threading.Lock()


def shared_pool(memory: int = DEFAULT_MEMORY, size: int = DEFAULT_WORKERS, wait: float = DEFAULT_WAIT) -> WorkerPool:
    """This process's pool for workers of `memory` bytes; the latest size and wait apply."""
    with _pools_lock:
        pool = _pools.get(memory)
        if pool is None:
            pool = _pools[memory] = WorkerPool(memory, size, wait)
        pool.size, pool.wait = max(1, size), wait
        return pool


def _after_fork_in_child() -> None:
    global _pools_lock
    _pools_lock = threading.Lock()
    for pool in _pools.values():
        pool._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


# ------------------------------------------------------------------------------- worker side


def _limit_self(memory: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    except (ValueError, OSError):
        pass
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


_cpu_soft_limit: list[float] = [math.inf]  # the worker's current RLIMIT_CPU soft limit


def _limit_cpu(seconds: float) -> None:
    """Let the kernel stop this call once it has used about `seconds` of CPU time.

    RLIMIT_CPU counts the process's whole life in whole seconds, so the soft limit is moved along
    with the CPU time used; it is left alone while it still falls between "enough for this call"
    and "one second more than that" (a setrlimit per call costs more than the rest of a call)."""
    import resource

    if not seconds or seconds <= 0:
        if _cpu_soft_limit[0] != math.inf:
            resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            _cpu_soft_limit[0] = math.inf
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    needed = usage.ru_utime + usage.ru_stime + seconds
    if needed + 0.5 <= _cpu_soft_limit[0] <= needed + 2:
        return
    # One more second than needed, so the parent's wall-clock kill normally comes first.
    soft = math.ceil(needed) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    _cpu_soft_limit[0] = soft


class _Channel:
    """The worker's end of the pipes, also used by helper stubs to ask the parent."""

    def __init__(self, read_fd: int, write_fd: int):
        self.reader, self.write_fd = _Reader(read_fd, timed=False), write_fd

    def ask(self, name: str, deadline, args: tuple, kwargs: dict) -> Any:
        try:
            payload = encode({"call": name, "args": list(args), "kwargs": kwargs})
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name}() takes data only: {err}") from None
        began = time.monotonic()
        _write_frame(self.write_fd, payload)
        frame = self.reader.frame()
        deadline.extend(time.monotonic() - began)
        if frame is None:
            raise SystemExit(0)
        answer = decode(frame)
        if "error" in answer:
            raise exception_from_wire(answer["error"])
        return answer.get("ok")


def serve() -> None:
    """A worker's life: lower its limits, say it is ready, answer requests until the pipe closes."""
    from . import restricted  # already imported with this module; named here for _answer

    memory = int(sys.argv[1])

    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    # Stray output (a warning, a library's print) must not land in the protocol.
    os.dup2(null, 0)
    os.dup2(null, 1)
    channel = _Channel(read_fd, write_fd)
    _limit_self(memory)
    _write_frame(write_fd, encode({"ready": os.getpid()}))
    while True:
        frame = channel.reader.frame()
        if frame is None:
            return
        try:
            reply = _answer(restricted, channel, decode(frame))
        except MemoryError:
            reply = None
        if reply is None:
            # MemoryError: the worker's state may be damaged; report it and let the parent replace us.
            try:
                reply = encode({"error": exception_to_wire(
                    ScriptMemory(f"script exceeded the memory limit of {memory // MiB} MiB")), "retire": True})
            except MemoryError:
                os._exit(_EXIT_OUT_OF_MEMORY)
        _write_frame(write_fd, reply)


def _answer(restricted, channel: _Channel, request: dict) -> bytes | None:
    _limit_cpu(request.get("time") or 0)
    deadline = restricted.Deadline(request.get("time"))
    op, source = request.get("op"), request.get("source")
    data = request.get("data") or {}
    try:
        if op == "render":
            result: dict = {"ok": restricted.render(source, data, deadline)}
        else:
            result = _run_code(restricted, channel, op, source, data, request, deadline)
    except MemoryError:
        return None
    except RecursionError as err:
        result = {"error": exception_to_wire(err)}
    except Exception as err:  # noqa: BLE001 - every failure is reported to the parent
        result = {"error": exception_to_wire(err, restricted.script_line(err.__traceback__))}
    return _bounded(result, request.get("result") or DEFAULT_RESULT)


def _run_code(restricted, channel: _Channel, op: str, source: str, data: dict, request: dict, deadline) -> dict:
    mode = "eval" if op == "eval" else "exec"
    code = restricted.compiled(source, mode)
    helpers = {name: restricted.Named(_stub(channel, name, deadline), name) for name in request.get("helpers") or ()}
    external = request.get("external") or {}
    if mode == "eval":
        namespace = {**helpers, **external, **data, **restricted.namespace_for(code)}
        return {"ok": restricted.run(code.code, namespace, eval, deadline)}
    # As in SpiffWorkflow's TaskDataEnvironment, the task data is the script's global namespace.
    data.update(helpers)
    data.update(external)
    data.update(restricted.namespace_for(code))
    restricted.run(code.code, data, exec, deadline)
    restricted.strip_non_data(data, keep_out=[*helpers, *external])
    return {"data": data}


def _stub(channel: _Channel, name: str, deadline) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        return channel.ask(name, deadline, args, kwargs)
    return call


def _bounded(result: dict, limit: int) -> bytes:
    try:
        payload = encode(result)
    except TypeError as err:
        payload = encode({"error": exception_to_wire(ScriptError(_unstorable(result, err)))})
    except ValueError as err:  # an int of more than 4,300 digits, say
        payload = encode({"error": exception_to_wire(ScriptLimit(_unstorable(result, err)))})
    except RecursionError:
        payload = encode({"error": exception_to_wire(ScriptLimit("the result is nested too deeply to keep"))})
    if len(payload) > limit:
        payload = encode({"error": exception_to_wire(ScriptLimit(
            f"the result is {len(payload):,} bytes; at most {limit:,} bytes may be kept"))})
    return payload


def _unstorable(result: dict, err: Exception) -> str:
    """Name the variable that cannot be kept, when the script left one behind."""
    for key, value in (result.get("data") or {}).items():
        try:
            encode(value)
        except (TypeError, ValueError) as inner:
            return f"variable '{key}': {inner}"
    return str(err)
