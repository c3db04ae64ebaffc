"""What a sourcemart file says (sourcemarts/<name>.json), validated with JSON paths in errors.

    {"sourcemart": "acme",
     "dag_options": {"poke_interval_s": 5, "max_poke_interval_s": 60, "timeout_s": 21600,
                     "is_paused_upon_creation": false},
     "tables": [{"name": "orders", "schedule": "0 2 * * *", "dag_options": {...},
                 "collector": {"processors": [<copy>, <decompress>...], "wait_on": []},
                 "refiner": {"processors": [<transform>...], "stages": ["bronze", "silver", "edw"], "wait_on": []}}],
     "pipelines": [{"name": "unpack", "upstreams": [...], "downstreams": [...],
                    "skip_upstreams_refiners": [...], "skip_downstreams_collectors": [...],
                    "processors": [...], "wait_on": []}]}

Processors are checked by the core's own config validation (pipeline.config) in compile.py, so a
processor error reads the same here as in a 400 from the Functions app.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator

from pipeline.config import _Strict

NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
# An asset reference: "sourcemart/table/scheduled|collected|refined", "sourcemart/pipelines/name",
# or any URI with a scheme (an asset some other system updates).
ASSET_REF = r"^([A-Za-z0-9][A-Za-z0-9_-]*/([A-Za-z0-9][A-Za-z0-9_-]*/(scheduled|collected|refined)|pipelines/[A-Za-z0-9][A-Za-z0-9_-]*)|[a-z][a-z0-9+.-]*://\S+)$"
# Cron (5 fields) or one of Airflow's presets.
SCHEDULE = r"^(@(hourly|daily|weekly|monthly|quarterly|yearly|annually|midnight)|(\S+\s+){4}\S+)$"


class DagOptions(_Strict):
    """How the sourcemart's (or one table's) DAGs run on Airflow; a table's options override its
    sourcemart's, which override the plan's defaults (dag_compiler.compile.DEFAULTS)."""

    poke_interval_s: int | None = Field(default=None, ge=1, le=3600,
                                        description="the first wait between status polls; it doubles up to max_poke_interval_s")
    max_poke_interval_s: int | None = Field(default=None, ge=1, le=86400, description="the longest wait between polls")
    timeout_s: int | None = Field(default=None, ge=1, le=7 * 86400,
                                  description="how long a run may take before Airflow gives up (and terminates it)")
    is_paused_upon_creation: bool | None = Field(
        default=None, description="false: the DAGs run as soon as Airflow first sees them; unset: Airflow's own setting")


class Collector(_Strict):
    """Source -> raw, run by the Functions app: a download (copy) and any processors after it."""

    processors: list[dict[str, Any]] = Field(min_length=1)
    wait_on: list[str] = Field(default=[], description="more assets the Collector waits for")

    @model_validator(mode="after")
    def _refs(self):
        _check_refs(self.wait_on, "wait_on")
        return self


class Refiner(_Strict):
    """Raw -> bronze -> ... -> EDW: processors run by the Functions app first, then the stages."""

    processors: list[dict[str, Any]] = []
    stages: list[str] = Field(default=[], description="the downstream stages, in order (e.g. bronze, silver, edw)")
    wait_on: list[str] = []

    @model_validator(mode="after")
    def _check(self):
        _check_refs(self.wait_on, "wait_on")
        _check_names(self.stages, "stages")
        return self


class Table(_Strict):
    name: str = Field(pattern=NAME)
    description: str | None = None
    schedule: str | None = Field(default=None, pattern=SCHEDULE,
                                 description="cron kept by a tiny scheduled DAG; none: the table runs on assets only")
    collector: Collector | None = None
    refiner: Refiner | None = Field(default_factory=Refiner, description="null: the table gets no Refiner")
    dag_options: DagOptions | None = None


class SourcemartPipeline(_Strict):
    """Shared processors that run after all upstream tables are collected and before the
    downstream tables' pipelines."""

    name: str = Field(pattern=NAME)
    upstreams: list[str] = Field(min_length=1)
    downstreams: list[str] = []
    skip_upstreams_refiners: list[str] = Field(default=[], description="upstream tables that get no Refiner")
    skip_downstreams_collectors: list[str] = Field(
        default=[], description="downstream tables that get no Collector: these processors write their raw data")
    processors: list[dict[str, Any]] = Field(min_length=1)
    wait_on: list[str] = []

    @model_validator(mode="after")
    def _check(self):
        _check_refs(self.wait_on, "wait_on")
        for field in ("upstreams", "downstreams", "skip_upstreams_refiners", "skip_downstreams_collectors"):
            _check_names(getattr(self, field), field)
        for field, within in (("skip_upstreams_refiners", "upstreams"), ("skip_downstreams_collectors", "downstreams")):
            for i, table in enumerate(getattr(self, field)):
                if table not in getattr(self, within):
                    raise ValueError(f"@{field}[{i}]: {table!r} is not one of this pipeline's {within}")
        both = sorted(set(self.upstreams) & set(self.downstreams))
        if both:
            raise ValueError(f"@downstreams: {', '.join(both)} cannot be both upstream and downstream of one pipeline")
        return self


class Sourcemart(_Strict):
    sourcemart: str = Field(pattern=NAME)
    description: str | None = None
    tables: list[Table] = Field(min_length=1)
    pipelines: list[SourcemartPipeline] = []
    dag_options: DagOptions | None = None

    @model_validator(mode="after")
    def _unique(self):
        for what, items in (("tables", self.tables), ("pipelines", self.pipelines)):
            seen = set()
            for i, item in enumerate(items):
                if item.name in seen:
                    raise ValueError(f"@{what}[{i}].name: {item.name!r} is declared twice")
                seen.add(item.name)
        return self


def _check_refs(refs: list[str], field: str) -> None:
    for i, ref in enumerate(refs):
        if not re.match(ASSET_REF, ref):
            raise ValueError(f"@{field}[{i}]: {ref!r} is not an asset reference (sourcemart/table/scheduled|collected|refined, "
                             "sourcemart/pipelines/name, or a URI with a scheme)")


def _check_names(names: list[str], field: str) -> None:
    for i, name in enumerate(names):
        if not re.match(NAME, name):
            raise ValueError(f"@{field}[{i}]: {name!r} is not a name (letters, digits, '_' and '-')")

