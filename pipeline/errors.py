"""The pipeline's errors, classified by their type: can running the unit again succeed?

Two marks, mixed into the classes below (after dlt's TerminalException / TransientException):

    Permanent   the data, the config or a policy is wrong: a retry fails the same way, so none is made
    Transient   I/O that may work next time (a dropped connection, a 5xx, a storage hiccup)

An error that carries neither mark (a builtin OSError from a socket, anything unforeseen) is
treated as transient: retrying costs a few attempts, guessing "permanent" would fail a run that a
retry could have saved. Nothing here looks at builtin exception types or parses message text.

The tree (after httpx's _exceptions.py):

    PipelineError                    carries `source` (a location label), `line`, `member`
     ├── PermanentError  [Permanent]
     │    ├── ConfigError            a config or run request is invalid (each error names its JSON path)
     │    ├── SettingError           an app setting named in the config is not set
     │    ├── DataError              the input is wrong
     │    │    ├── BadLine           a JSONL line that is not a JSON object  (processors.transform.jsonl)
     │    │    ├── InputError        input that is not what input_format / input_encoding say: a JSON
     │    │    │                     document's syntax, a missing records_path, a byte invalid in the
     │    │    │                     encoding  (processors.transform.formats)
     │    │    ├── MemberError       an archive member that cannot be extracted  (processors.decompress)
     │    │    └── SchemaDrift       fail_on_drift: unmapped or vanished paths  (processors.transform.drift)
     │    ├── LimitExceeded          a limit the operator sets: archive bytes, ratio, members; rejected lines;
     │    │                          an HTTP source's max_bytes
     │    ├── CollisionError         two sources of one run would write the same output
     │    ├── MissingSource          a container, blob, file or URL that does not exist (404/410)
     │    └── PolicyError            the operator's policy refuses what a request asks (pipeline.policy)
     ├── TransientError  [Transient]
     └── Interrupted                 SIGINT/SIGTERM: the run stops; neither retried nor "bad data"

    UnitError                        what a unit raises to its executor: the cause's message, named
                                     by source (and line or member), and the cause's classification

Each concrete class also derives from the builtin it replaces (ValueError, LookupError, OSError),
so code that predates this module and catches those keeps working.
"""

from __future__ import annotations


class Permanent(Exception):
    """Mark: running the same unit again cannot succeed."""


class Transient(Exception):
    """Mark: running the same unit again may succeed."""


class PipelineError(Exception):
    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 member: str | None = None):
        super().__init__(message)
        self.source = source
        self.line = line
        self.member = member


class PermanentError(PipelineError, Permanent):
    pass


class TransientError(PipelineError, Transient, OSError):
    pass


class ConfigError(PermanentError, ValueError):
    """A config failed validation. `errors` is a list of 'json.path: message' strings."""

    def __init__(self, errors: list[str], source: str = "config"):
        self.errors = errors
        super().__init__(f"{source} is invalid:\n" + "\n".join(f"  {e}" for e in errors), source=source)


class SettingError(PermanentError, LookupError):
    pass


class DataError(PermanentError, ValueError):
    pass


class MemberError(DataError):
    """An archive member could not be read; the message names the member."""


class SchemaDrift(DataError):
    """A transform with fail_on_drift found paths in the data it does not map, or mapped paths that
    never occur; the message names them and the fix (map them, or drift_ignore)."""


class LimitExceeded(PermanentError, ValueError):
    """A limit the operator sets (in the processor's config) was reached; the message names it."""


class CollisionError(PermanentError, ValueError):
    """Two sources would write the same output; the message names both."""


class MissingSource(PermanentError, LookupError):
    """A container, share, folder, file or URL that does not exist: a retry cannot make it appear.
    The message names it and what to fix."""


class PolicyError(PermanentError, ValueError):
    """A request asked for something the operator's policy does not allow. The message says which
    setting would allow it, never a secret."""


class Interrupted(PipelineError):
    """The run was asked to stop (SIGINT, SIGTERM): whatever was running is aborted, nothing more is published."""


class UnitError(PipelineError, RuntimeError):
    """A unit failed; the message names the source (file and line, archive member)."""

    def __init__(self, message: str, permanent: bool = False, **where):
        super().__init__(message, **where)
        self.permanent = permanent


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: by the error's mark, else its cause's (an error re-raised as
    another keeps the original's classification)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, Permanent):
            return True
        if isinstance(exc, (Transient, Interrupted)):
            return False
        if isinstance(exc, UnitError):
            return exc.permanent
        exc = exc.__cause__
    return False
