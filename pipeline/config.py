"""The sourcemart/table processors configuration: its models, validation and JSON Schema.

A config is validated once, before any data moves. Errors name the JSON path of the
bad field the way a person reading the JSON would write it:
``processors[1].processor_config.columns[3].path: ...``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
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

# An environment variable / app setting name. Configs name settings, never hold secrets.
SettingName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)]

# Query parameters that carry credentials; a URL holding one would put a secret in the config.
_SECRET_QUERY_KEYS = {"sig", "code", "key", "token", "access_token", "api_key", "apikey", "password", "secret",
                      "x-amz-signature", "x-amz-credential", "x-amz-security-token",
                      "x-goog-signature", "x-goog-credential"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalLocation(_Strict):
    """A path on this machine; also how a mounted network share is read."""

    type: Literal["local"]
    path: str = Field(min_length=1, description="File, folder (ends with '/') or glob ('*', '?', '**').")


class BlobLocation(_Strict):
    """Azure Blob Storage. `connection` names a setting holding a connection string or an account URL."""

    type: Literal["blob"]
    connection: SettingName
    container: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", description="Azure container name.")
    path: str = Field(default="", description="Blob name, prefix (ends with '/'; '' is the whole container) or glob.")
    block_size: int = Field(
        default=4 << 20, ge=64 << 10, le=100 << 20,
        description="Bytes per staged block when writing, per ranged GET when reading.",
    )


class HttpLocation(_Strict):
    """An HTTP API source: one streamed GET. Credentials come from settings named in `headers_from_env`."""

    type: Literal["http"]
    url: str
    headers_from_env: dict[str, SettingName] = Field(
        default_factory=dict, description="Header name -> setting holding its value (e.g. Authorization -> ACME_TOKEN)."
    )
    name: str | None = Field(default=None, description="File name for what is downloaded; default: last URL segment.")
    timeout_s: float = Field(default=60.0, gt=0)

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
        return url


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


class DecompressConfig(_StepConfig):
    members: str = Field(default="*", description="Glob of archive members to extract ('**' crosses folders).")


class Column(_Strict):
    name: str = Field(min_length=1)
    path: str | list[str] = Field(description="Dotted path into nested objects ('user.id'), or a list of keys.")

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


class JsonlTransformConfig(_StepConfig):
    columns: list[Column] = Field(min_length=1)
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

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        import codecs

        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self):
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


_PROCESSORS = {"copy": CopyProcessor, "decompress": DecompressProcessor, "transform": TransformProcessor}


def _processor_tag(v: Any) -> str | None:
    name = v.get("processor_name") if isinstance(v, dict) else getattr(v, "processor_name", None)
    return name if name in _PROCESSORS else None


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


class ConfigError(ValueError):
    """A config failed validation. `errors` is a list of 'json.path: message' strings."""

    def __init__(self, errors: list[str], source: str = "config"):
        self.errors = errors
        self.source = source
        super().__init__(f"{source} is invalid:\n" + "\n".join(f"  {e}" for e in errors))


def json_path(loc: tuple) -> str:
    """Render a pydantic error location as a JSON path, dropping union tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _PROCESSORS or part in ("local", "blob", "http"):
            continue  # discriminator tags pydantic inserts; not part of the document
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def _message(err: dict) -> str:
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err["type"] == "literal_error" and err.get("input") is not None:
        msg += f" (got {err['input']!r})"
    return msg


def validate_config(data: Any, source: str = "config") -> PipelineConfig:
    """Validate a parsed JSON document; raise ConfigError naming each bad field's JSON path."""
    return validate_model(PipelineConfig, data, source)


def validate_model(model: type[BaseModel], data: Any, source: str):
    """Validate `data` against a model; raise ConfigError with one 'json.path: message' per error."""
    try:
        return model.model_validate(data)
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
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"{path}:{exc.lineno}:{exc.colno}" if isinstance(exc, json.JSONDecodeError) else path
        raise ConfigError([f"{where}: not valid JSON: {exc.msg if hasattr(exc, 'msg') else exc}"], path) from None
    return validate_config(data, path)


def json_schema() -> dict:
    """The published JSON Schema (schema/processors.schema.json is generated from this)."""
    schema = TypeAdapter(PipelineConfig).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
