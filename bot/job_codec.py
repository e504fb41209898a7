"""Jobs and their results in Redis are data (msgpack), never pickle.

arq pickles jobs and results unless told otherwise, and unpickling runs whatever the bytes name: one write
to Redis would be code execution in every worker that reads it. This codec writes and reads only plain data
(None, bool, int, float, str, bytes, list, tuple, dict with str or bytes keys), the job argument types listed
in ``bot.jobs.JOB_TYPES`` (by class name, each field checked against its declared type) and exceptions, as
their type's name and their message: arq stores a failed job's exception as its result, and a message read
back is all anyone needs. Decoding never imports or calls anything the data names; anything else is
refused with an error that says what was found.
"""

from __future__ import annotations

import asyncio
import dataclasses
import types
import typing
from typing import Any

import msgpack

from bot.jobs import JOB_TYPES
from bot.redaction import scrub

# msgpack extension codes: Mull's only tags.
TUPLE = 1
JOB = 2
EXCEPTION = 3

MAX_MESSAGE = 2000  # characters of an exception message kept in a job's result
MAX_DEPTH = 32  # tags inside tags; Mull's own payloads nest three deep (job, its args tuple, a job type)


class CodecError(ValueError):
    """Bytes in Redis that are not a Mull job payload (a pickle, a foreign tag, a field of the wrong type)."""


class JobFailed(Exception):
    """A failed job's exception as read back from Redis: the name of its type and its message, nothing else."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message


def serialize(obj: Any) -> bytes:
    """msgpack of ``obj``; TypeError naming the first value that is neither plain data nor a job type."""
    return msgpack.packb(_plain(obj), use_bin_type=True)


def deserialize(data: bytes) -> Any:
    """The value ``serialize`` wrote; CodecError for anything else, without running any of it."""
    try:
        return _Reader().unpack(data)
    except CodecError:
        raise
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
        raise CodecError(
            f"a job payload in Redis is not Mull's msgpack ({type(exc).__name__}: {str(exc)[:200]}); Mull "
            "writes nothing but its own msgpack there, so something else wrote to Redis: delete the key, "
            "and keep Redis behind a password (in MULL_REDIS_URL) and off networks agents can reach"
        ) from None


def _plain(obj: Any) -> Any:
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str, bytes):
        return obj
    if kind is list:
        return [_plain(item) for item in obj]
    if kind is tuple:
        return msgpack.ExtType(TUPLE, serialize(list(obj)))
    if kind is dict:
        for key in obj:
            if type(key) not in (str, bytes):
                raise TypeError(f"a dict key of type {type(key).__qualname__} cannot go into a job: "
                                "keys must be str or bytes")
        return {key: _plain(value) for key, value in obj.items()}
    if kind in JOB_TYPES:
        fields = {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}
        return msgpack.ExtType(JOB, serialize([kind.__name__, fields]))
    if isinstance(obj, JobFailed):
        return msgpack.ExtType(EXCEPTION, serialize([obj.type_name, obj.message]))
    if isinstance(obj, BaseException):
        return msgpack.ExtType(EXCEPTION, serialize([kind.__name__, scrub(_message(obj))[:MAX_MESSAGE]]))
    raise TypeError(f"a {kind.__module__}.{kind.__qualname__} cannot go into a job: only plain data and the job "
                    "types of bot/jobs.py (JOB_TYPES) can; pass its fields instead")


def _message(exc: BaseException) -> str:
    """The message, and its cause's: arq wraps the reason a job could not be read in a bare "unable to ..."."""
    cause = exc.__cause__
    return f"{exc}; because {type(cause).__name__}: {cause}" if cause is not None else str(exc)


class _Reader:
    """One decoding: tags nest by recursion through msgpack's C code, so their depth is bounded here (deep
    enough nesting would otherwise overflow the C stack and kill the worker)."""

    def __init__(self) -> None:
        self.depth = 0

    def unpack(self, data: bytes) -> Any:
        if self.depth >= MAX_DEPTH:
            raise CodecError(f"tags in a job payload nest deeper than {MAX_DEPTH}; Mull never writes that")
        self.depth += 1
        try:
            return msgpack.unpackb(data, ext_hook=self.ext, raw=False, strict_map_key=True)
        finally:
            self.depth -= 1

    def ext(self, code: int, data: bytes) -> Any:
        if code == TUPLE:
            items = self.unpack(data)
            if type(items) is not list:
                raise CodecError("a tuple tag in a job payload does not hold a list")
            return tuple(items)
        if code == JOB:
            return _job(self.unpack(data))
        if code == EXCEPTION:
            name, message = _pair(self.unpack(data), "exception")
            if type(message) is not str:
                raise CodecError(f"the message of exception {name[:80]!r} in a job payload is not a string")
            if name == "CancelledError":  # arq's Job.abort() recognises an aborted job by this one type
                return asyncio.CancelledError(message)
            return JobFailed(name, message)
        raise CodecError(f"unknown tag {code} in a job payload: Mull writes only tags {TUPLE}, {JOB} and "
                         f"{EXCEPTION}")


def _pair(value: Any, what: str) -> tuple[str, Any]:
    if type(value) is not list or len(value) != 2 or type(value[0]) is not str:
        raise CodecError(f"an {what} tag in a job payload is not [name, value]")
    return value[0], value[1]


def _job(value: Any) -> Any:
    name, fields = _pair(value, "object")
    known = {cls.__name__: cls for cls in JOB_TYPES}
    cls = known.get(name)
    if cls is None:
        raise CodecError(f"a job payload names type {name[:80]!r}, which is not a job type of bot/jobs.py "
                         f"({', '.join(sorted(known))})")
    if type(fields) is not dict:
        raise CodecError(f"the fields of {name} in a job payload are not a mapping")
    hints = typing.get_type_hints(cls)
    declared = {field.name: field for field in dataclasses.fields(cls)}
    for key, field_value in fields.items():
        if key not in declared:
            raise CodecError(f"{name} has no field {str(key)[:80]!r}")
        if not _conforms(field_value, hints[key]):
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise CodecError(f"{name}.{key} holds a {type(field_value).__name__}, not {expected}")
    missing = [key for key, field in declared.items() if key not in fields
               and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
    if missing:
        raise CodecError(f"{name} in a job payload lacks {', '.join(missing)}")
    return cls(**fields)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a decoded value fits a field's declared type (the plain types and Literals job fields use)."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return any(type(value) is type(choice) and value == choice for choice in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return type(value) in (int, float)
    return hint in (bool, int, str, bytes) and type(value) is hint
