"""The sourcemart/table processors configuration: its models, validation and JSON Schema.

A config is validated once, before any data moves. Errors name the JSON path of the
bad field the way a person reading the JSON would write it:
``processors[1].processor_config.columns[3].path: ...``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError  # re-exported

# An environment variable / app setting name. Configs name settings, never hold secrets.
SettingName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)]

# Query parameters that carry credentials; a URL holding one would put a secret in the config.
_SECRET_QUERY_KEYS = {"sig", "code", "key", "token", "access_token", "api_key", "apikey", "password", "secret",
                      "x-amz-signature", "x-amz-credential", "x-amz-security-token",
                      "x-goog-signature", "x-goog-credential"}


# Control characters (C0, DEL, C1) and lone surrogates (JSON's "\ud800"): no file system, blob name,
# URL or CSV header takes them, so a name or path holding one is refused here, not at run time.
_UNUSABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _usable(v: str) -> str:
    m = _UNUSABLE.search(v)
    if m:
        raise ValueError(f"must not contain control characters (found {m.group()!r} at position {m.start()})")
    return v


# A name or path: no control characters.
Text = Annotated[str, AfterValidator(_usable)]


class _Strict(BaseModel):
    # strict: JSON types as they are ("header": "yes" or 1 is not a boolean, "5" is not a number).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LocalLocation(_Strict):
    """A path on this machine; also how a mounted network share is read."""

    type: Literal["local"]
    path: Text = Field(min_length=1, description="File, folder (ends with '/') or glob ('*', '?', '**').")


class BlobLocation(_Strict):
    """Azure Blob Storage. `connection` names a setting holding a connection string or an account URL."""

    type: Literal["blob"]
    connection: SettingName
    container: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", description="Azure container name.")
    path: Text = Field(default="", description="Blob name, prefix (ends with '/'; '' is the whole container) or glob.")
    block_size: int = Field(
        default=4 << 20, ge=64 << 10, le=100 << 20,
        description="Bytes per staged block when writing, per ranged GET when reading.",
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False,
                             description="Seconds to connect and per read; a frozen endpoint fails the unit in bounded time.")


# A header name (RFC 9110 token), minus the headers the transport owns: a config must not set the
# Host (virtual-host confusion), framing (request smuggling) or the range/version pin of a read.
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]
_TRANSPORT_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
                      "trailer", "proxy-authorization", "proxy-connection", "range", "if-match", "if-range",
                      "expect", "cookie"}


class HttpLocation(_Strict):
    """An HTTP API source: one streamed GET. Credentials come from settings named in `headers_from_env`."""

    type: Literal["http"]
    url: Text
    headers_from_env: dict[HeaderName, SettingName] = Field(
        default_factory=dict, description="Header name -> setting holding its value (e.g. Authorization -> ACME_TOKEN)."
    )
    name: Text | None = Field(default=None, description="File name for what is downloaded; default: last URL segment.")
    timeout_s: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False, description="Seconds to connect and per read.")
    max_bytes: int = Field(default=4 << 30, ge=1, le=1 << 40,
                           description="The most bytes this source may send (an endless body fails, not the disk).")
    deadline_s: float = Field(default=1800.0, gt=0, le=86400, allow_inf_nan=False,
                              description="Seconds for the whole download, retries included (a trickling server fails).")

    @field_validator("url")
    @classmethod
    def _url_has_no_secret(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.username or parts.password:
            raise ValueError("must not embed credentials; use headers_from_env")
        secret = sorted({k for k, _ in parse_qsl(parts.query) if k.lower() in _SECRET_QUERY_KEYS})
        if secret:
            raise ValueError(f"query parameter {secret[0]!r} looks like a credential; use headers_from_env")
        if any(ord(c) < 33 or ord(c) == 127 for c in url):
            raise ValueError("must not contain spaces or control characters (percent-encode them)")
        return url

    @field_validator("headers_from_env")
    @classmethod
    def _not_transport_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        owned = sorted(h for h in headers if h.lower() in _TRANSPORT_HEADERS)
        if owned:
            raise ValueError(f"header {owned[0]!r} is set by the transport, not by a config")
        return headers


SourceLocation = Annotated[Union[LocalLocation, BlobLocation, HttpLocation], Field(discriminator="type")]
DestLocation = Annotated[Union[LocalLocation, BlobLocation], Field(discriminator="type")]


def _is_folder(path: str) -> bool:
    return path == "" or path.endswith("/")


class _StepConfig(_Strict):
    src: SourceLocation | None = Field(
        default=None, description="Omitted: the files the previous processor wrote (one unit per file)."
    )
    dest: DestLocation

    @model_validator(mode="after")
    def _dest_is_folder(self):
        # Several units write here (a glob, an archive's members, the previous step's files):
        # output names are derived from source names under a destination folder.
        if not _is_folder(self.dest.path):
            raise ValueError("@dest.path: must be a folder (end with '/'); output names are derived from sources")
        return self


class CopyConfig(_StepConfig):
    pass


class ArchiveLimits(_Strict):
    """What one archive may unpack to. Checked up front from what the archive declares (a zip's
    central directory, each tar header) and on the bytes actually written while unpacking (gzip
    and tar declare nothing trustworthy). Over a limit, the archive fails and publishes nothing."""

    max_total_bytes: int = Field(default=4 << 30, ge=1, le=1 << 50,
                                 description="Most bytes one archive unpacks to, all members together (default 4 GiB).")
    max_ratio: float = Field(default=100.0, ge=1, le=1_000_000, allow_inf_nan=False,
                             description="Most uncompressed bytes per byte of archive (beyond the first MiB written).")
    max_members: int = Field(default=100_000, ge=1, le=10_000_000,
                             description="Most members (files, folders, links) in one archive.")


class DecompressConfig(_StepConfig):
    members: Text = Field(default="*", description="Glob of archive members to extract ('**' crosses folders).")
    limits: ArchiveLimits = Field(default_factory=ArchiveLimits)


class Column(_Strict):
    name: Text = Field(min_length=1)
    path: Text | list[Text] = Field(description="Dotted path into nested objects ('user.id'), or a list of keys.")

    @field_validator("path")
    @classmethod
    def _path_segments(cls, v: str | list[str]) -> str | list[str]:
        segments = v.split(".") if isinstance(v, str) else v
        if not segments or any(s == "" for s in segments):
            raise ValueError("must be non-empty keys separated by '.' (use a list of keys for keys containing '.')")
        return v

    @property
    def segments(self) -> list[str]:
        return self.path.split(".") if isinstance(self.path, str) else list(self.path)


DEFAULT_REJECT_RATIO = 0.01


def _text_codec(v: str, what: str) -> str:
    """A Python text codec's name (bytes-to-bytes codecs such as hex, base64, zlib are refused)."""
    import codecs

    try:
        info = codecs.lookup(v)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise ValueError(f"unknown encoding {v!r}") from None
    if not info._is_text_encoding:  # hex, base64, rot13, zlib: bytes-to-bytes codecs
        raise ValueError(f"{v!r} is not a text encoding (use {what})")
    return v


# The transform's input formats (processors/transform/formats/: one reader module each).
InputFormat = Literal["jsonl", "jsonl_arrays", "json"]


class JsonlTransformConfig(_StepConfig):
    """The transform: JSON records (JSON Lines, array rows, or one JSON document) -> CSV."""

    columns: list[Column] = Field(min_length=1)
    input_format: InputFormat = Field(
        default="jsonl", description="jsonl: one JSON object per line; jsonl_arrays: one JSON array per line "
                                     "(column paths start with an index, or a header_row name); json: one "
                                     "document holding an array of records (top level, or at records_path), "
                                     "parsed incrementally.")
    header_row: bool = Field(default=False, description="With jsonl_arrays: the first line names the columns "
                                                        "(column paths may start with those names).")
    records_path: Text | None = Field(
        default=None, description="With json: dotted path of the array of records ('statuses', 'data.items'); "
                                  "null: the document is itself an array of records.")
    input_encoding: str = Field(default="utf-8", description="Input text encoding: utf-8 (a BOM is dropped), "
                                                             "utf-16 (with BOM), utf-16-le, latin-1, cp1252, ...")
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quoting: Literal["minimal", "all", "nonnumeric", "none"] = "minimal"
    null_text: str = Field(default="", description="Text written for JSON null (a missing key is always empty).")
    encoding: str = Field(default="utf-8", description="Output encoding: utf-8, utf-8-sig, cp1252, ...")
    encoding_errors: Literal["strict", "replace"] = Field(
        default="strict", description="A character the encoding cannot represent: fail, or write '?'."
    )
    newline: Literal["\n", "\r\n"] = "\r\n"
    on_error: Literal["fail", "skip", "quarantine"] = "fail"
    rejects: DestLocation | None = Field(default=None, description="Folder for rejected lines (on_error=quarantine).")
    # The reject budget (on_error skip/quarantine): beyond it the unit fails and publishes nothing,
    # so losing a file's data is never a success. A unit whose every line was rejected always fails.
    max_rejects: int | None = Field(
        default=None, ge=0, le=1 << 62, description="Most rejected lines per file; null: only the ratio applies.")
    max_reject_ratio: float = Field(
        default=DEFAULT_REJECT_RATIO, ge=0, le=1, allow_inf_nan=False,
        description="Most rejected lines per file, as a share of its non-blank lines (0.01 = 1%).")
    engine: Literal["auto", "native", "python"] = Field(
        default="auto", description="auto: the native kernel when installed, else Python; native: fail without "
                                    "it; python: the pure-Python path. All write the same bytes.")
    threads: int | None = Field(
        default=None, ge=1, le=64, description="Converter threads for one file (native kernel); default: the cores "
                                               "available to this process.")
    archive: Literal["zip", "gzip", "tar", "tar.gz"] | None = Field(
        default=None, description="src is an archive: each member (selected by `members`) is read straight into "
                                  "the converter, one CSV per member; nothing is extracted.")
    members: str = Field(default="*", description="With archive: glob of members to convert ('**' crosses folders).")
    limits: ArchiveLimits = Field(default_factory=ArchiveLimits,
                                  description="With archive: what the archive may unpack to (as for decompress).")
    # Schema drift (processors/transform/drift.py), judged from a sample of the lines (32 KiB, then ~0.04%)
    # (a small file whole): reported in each unit's result and the run manifest.
    drift: bool = Field(default=True, description="Report schema drift (unmapped paths, mapped paths never "
                                                  "present, mapped paths changing JSON type), from a sample of lines.")
    fail_on_drift: bool = Field(default=False, description="Fail the unit (publishing nothing) when the sample "
                                                           "holds unmapped paths or a mapped path never occurs.")
    drift_ignore: list[Annotated[Text, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=1000,
        description="Globs of paths left out of the drift report and never failing it ('debug.*', 'items.*.price'; "
                    "'*' also crosses '.').")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        return _text_codec(v, "utf-8, utf-8-sig, cp1252, ...")

    @field_validator("input_encoding")
    @classmethod
    def _known_input_encoding(cls, v: str) -> str:
        return _text_codec(v, "utf-8, utf-16, latin-1, cp1252, ...")

    @field_validator("records_path")
    @classmethod
    def _records_segments(cls, v: str | None) -> str | None:
        if v is not None and (v == "" or any(s == "" for s in v.split("."))):
            raise ValueError("must be non-empty keys separated by '.' (null: the document is itself the array)")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.delimiter in ('"', "\r", "\n") or (self.quoting == "none" and self.delimiter == "\\"):
            raise ValueError(f"@delimiter: {self.delimiter!r} cannot separate fields: it is the quote or escape "
                             "character or a line break")
        # What every CSV holds must be writable in the encoding (the header and null_text too unless
        # encoding_errors is 'replace'): otherwise each run would fail on its first line.
        fixed = [("delimiter", self.delimiter), ("newline", self.newline), ("encoding", '"0123456789.-+eEtruefalsn')]
        if self.encoding_errors == "strict":
            fixed += [("null_text", self.null_text)]
            fixed += [(f"columns[{i}].name", c.name) for i, c in enumerate(self.columns) if self.header]
        for field, text in fixed:
            try:
                text.encode(self.encoding, self.encoding_errors)
            except (UnicodeError, LookupError):
                raise ValueError(f"@{field}: {text!r} cannot be written in encoding {self.encoding!r}") from None
        names = [c.name for c in self.columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"@columns[{names.index(dup[0], names.index(dup[0]) + 1)}].name: duplicate column name {dup[0]!r}")
        if self.on_error == "quarantine":
            if self.rejects is None:
                raise ValueError("@rejects: required when on_error is quarantine")
            if not _is_folder(self.rejects.path):
                raise ValueError("@rejects.path: must be a folder (end with '/')")
        elif self.rejects is not None:
            raise ValueError("@rejects: only used with on_error=quarantine")
        if self.on_error == "fail":  # by value: a config travels with its defaults filled in
            budget = "max_rejects" if self.max_rejects is not None else \
                "max_reject_ratio" if self.max_reject_ratio != DEFAULT_REJECT_RATIO else None
            if budget:
                raise ValueError(f"@{budget}: only used with on_error skip or quarantine (fail rejects nothing)")
        if self.header_row and self.input_format != "jsonl_arrays":
            raise ValueError("@header_row: only used with input_format jsonl_arrays")
        if self.records_path is not None and self.input_format != "json":
            raise ValueError("@records_path: only used with input_format json")
        if self.input_format != "jsonl" and self.engine == "native":
            raise ValueError(f"@engine: the native kernel reads input_format jsonl only; {self.input_format} "
                             "runs on the Python path (use engine 'auto')")
        if self.input_format == "jsonl_arrays" and not self.header_row:
            for i, c in enumerate(self.columns):
                if not c.segments[0].isdigit():
                    raise ValueError(f"@columns[{i}].path: with jsonl_arrays and no header_row a path starts "
                                     f"with a column index ('0', '3.name'), not {c.segments[0]!r}")
        if not self.drift and (self.fail_on_drift or self.drift_ignore):
            raise ValueError(f"@{'fail_on_drift' if self.fail_on_drift else 'drift_ignore'}: only used with drift: true")
        if self.archive is None and self.members != "*":
            raise ValueError("@members: only used with archive (a transform whose src is an archive)")
        return self


class _Processor(_Strict):
    description: str | None = None


class CopyProcessor(_Processor):
    processor_name: Literal["copy"]
    processor_type: Literal["copy"] = "copy"
    processor_config: CopyConfig


class DecompressProcessor(_Processor):
    processor_name: Literal["decompress"]
    processor_type: Literal["zip", "gzip", "tar", "tar.gz"]
    processor_config: DecompressConfig


class TransformProcessor(_Processor):
    processor_name: Literal["transform"]
    processor_type: Literal["JSONL"]
    processor_config: JsonlTransformConfig


# The transform's config, whatever its input format (the class keeps its first name: code imports it).
TransformConfig = JsonlTransformConfig

_PROCESSORS = {"copy": CopyProcessor, "decompress": DecompressProcessor, "transform": TransformProcessor}


def _processor_tag(v: Any) -> str | None:
    name = v.get("processor_name") if isinstance(v, dict) else getattr(v, "processor_name", None)
    return name if isinstance(name, str) and name in _PROCESSORS else None  # any JSON value may be here


Processor = Annotated[
    Union[tuple(Annotated[m, Tag(n)] for n, m in _PROCESSORS.items())],
    Discriminator(
        _processor_tag,
        custom_error_type="processor_name",
        custom_error_message=f"processor_name must be one of {', '.join(_PROCESSORS)}",
    ),
]


class PipelineConfig(_Strict):
    """What a sourcemart or a table runs: its processors, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Sourcemart/table processors config")

    sourcemart: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    table: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    processors: list[Processor] = Field(min_length=1)

    @model_validator(mode="after")
    def _first_has_src(self):
        first = self.processors[0]
        if first.processor_config.src is None:
            raise ValueError("@processors[0].processor_config.src: required for the first processor (there is no previous one to read from)")
        return self



def json_path(loc: tuple) -> str:
    """Render a pydantic error location as a JSON path, dropping union tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _PROCESSORS or part in ("local", "blob", "http"):
            continue  # discriminator tags pydantic inserts; not part of the document
        elif str(part).startswith(("function-after[", "list[")):
            continue  # the members of a str-or-list union (a column's path)
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def _message(err: dict) -> str:
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err["type"] == "literal_error" and err.get("input") is not None:
        msg += f" (got {_short(err['input'])})"
    # One error, one line: a value quoted in the message may hold line breaks or be huge.
    msg = msg.replace("\r", "\\r").replace("\n", "\\n")
    return msg if len(msg) <= 300 else msg[:300] + "..."


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def validate_config(data: Any, source: str = "config") -> PipelineConfig:
    """Validate a parsed JSON document; raise ConfigError naming each bad field's JSON path."""
    return validate_model(PipelineConfig, data, source)


def validate_model(model: type[BaseModel], data: Any, source: str):
    """Validate `data` against a model; raise ConfigError with one 'json.path: message' per error."""
    try:
        return model.model_validate(data)
    except RecursionError:
        raise ConfigError(["(root): nested too deeply"], source) from None
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            path, msg = json_path(err["loc"]), _message(err)
            if msg.startswith("@"):
                # A check on an object that is about one of its fields: "@field.path: message".
                field, msg = msg[1:].split(": ", 1)
                path = field if path == "(root)" else path + ("" if field.startswith("[") else ".") + field
            errors.append(f"{path}: {msg}")
        raise ConfigError(sorted(set(errors), key=errors.index), source) from None


def load_config(path: str) -> PipelineConfig:
    """Read and validate a JSON config file; JSON syntax errors name file, line and column."""
    import json

    with open(path, "rb") as f:
        raw = f.read()
    try:
        # Numbers JSON allows but no config field does (integers of thousands of digits, which int()
        # refuses past 4,300) and constants JSON does not allow (NaN, Infinity) stay in the document
        # as markers, so validation names their JSON path.
        data = json.loads(raw.decode("utf-8-sig"), parse_int=_parse_int, parse_constant=NotANumber)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"{path}:{exc.lineno}:{exc.colno}" if isinstance(exc, json.JSONDecodeError) else path
        raise ConfigError([f"{where}: not valid JSON: {exc.msg if hasattr(exc, 'msg') else exc}"], path) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid JSON: nested too deeply"], path) from None
    return validate_config(data, path)


class NotANumber:
    """A number no config field takes: `NaN`, `Infinity`, an integer of more than 300 digits."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text if len(self.text) <= 20 else f"{self.text[:10]}...({len(self.text)} digits)"


def _parse_int(text: str):
    return int(text) if len(text) <= 300 else NotANumber(text)


def json_schema() -> dict:
    """The published JSON Schema (schema/processors.schema.json is generated from this)."""
    schema = TypeAdapter(PipelineConfig).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
