"""Deploy-time wiring: sourcemart files in, one compiled JSON out — every DAG to generate with its
id, schedule (cron or assets), tasks and outlets. All dependency logic lives here, run once at
deploy; the DAG factory (dags/sourcemart_dags.py) only instantiates what this says, so parsing
stays cheap for the scheduler. No Airflow import.

Per table (sourcemart `s`, table `t`), assets `s/t/scheduled`, `s/t/collected`, `s/t/refined`:
  s.t.schedule   cron -> updates s/t/scheduled                         (only if the table has a schedule)
  s.t.collector  on s/t/scheduled [+ the pipelines it is downstream of] [+ wait_on]
                 -> processors (Functions app) -> updates s/t/collected
  s.t.refiner    on s/t/collected (or, with its Collector skipped, on the pipelines that write its
                 raw data) [+ wait_on] -> processors -> stages -> updates s/t/refined
Per sourcemart pipeline `p`, asset `s/pipelines/p`:
  s.pipelines.p  on every upstream's s/u/collected [+ wait_on] -> processors -> updates s/pipelines/p
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dag_compiler.model import Sourcemart
from pipeline.config import ConfigError, validate_config, validate_model

ASSET_SCHEME = "sourcemart"
FORMAT_VERSION = 1
DEFAULTS = {
    "functions_conn_id": "sourcemart_functions",  # the Airflow HTTP connection to the Functions app
    "start_route": "api/pipelines",
    # The status sensor (dags/sourcemart_dags.py): polls start a few seconds apart and back off to
    # max_poke_interval_s; a sourcemart or table may set these four in its dag_options.
    "poke_interval_s": 5,
    "max_poke_interval_s": 60,
    "timeout_s": 6 * 3600,
    "is_paused_upon_creation": None,  # None: Airflow's own [core] dags_are_paused_at_creation
    # Within one poll: 404s in a row before "instance not found"; connection errors/5xx tolerated in a row.
    "not_found_polls": 3,
    "error_budget": 4,
    "start_date": "2024-01-01",
}
OPTIONS = ("poke_interval_s", "max_poke_interval_s", "timeout_s", "is_paused_upon_creation")


class CompileError(ValueError):
    """Sourcemart files that cannot be compiled; each error names the file and a JSON path."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("sourcemarts do not compile:\n" + "\n".join(f"  {e}" for e in errors))


def asset_uri(ref: str) -> str:
    """'acme/orders/collected' -> 'sourcemart://acme/orders/collected'; other URIs stay as they are."""
    return ref if "://" in ref else f"{ASSET_SCHEME}://{ref}"


@dataclass
class DagSpec:
    dag_id: str
    kind: str  # schedule | collector | refiner | pipeline
    sourcemart: str
    name: str  # the table or the pipeline
    source: str  # file that declared it, for errors
    path: str  # JSON path of the table or pipeline in that file
    description: str
    cron: str | None = None
    waits: dict[str, str] = field(default_factory=dict)  # asset uri -> JSON path that asked for it
    tasks: list[dict] = field(default_factory=list)
    outlet: str = ""
    options: dict = field(default_factory=dict)  # the dag_options set for it (sourcemart, then table)

    def render(self) -> dict:
        schedule = {"cron": self.cron} if self.cron else {"assets": sorted(self.waits)}
        return {"dag_id": self.dag_id, "kind": self.kind, "sourcemart": self.sourcemart,
                ("table" if self.kind != "pipeline" else "pipeline"): self.name,
                "description": self.description, "schedule": schedule, "tasks": self.tasks,
                "outlets": [self.outlet], **({"options": self.options} if self.options else {})}


class _Compiler:
    def __init__(self):
        self.errors: list[str] = []
        self.dags: list[DagSpec] = []
        self.missing: dict[str, str] = {}  # asset uri -> why no DAG updates it

    def error(self, source: str, path: str, message: str) -> None:
        self.errors.append(f"{source}: {path}: {message}")

    def processors(self, source: str, owner: str, sourcemart: str, table: str | None, processors: list,
                   group_id: str) -> dict | None:
        """The core's own validation of `owner`.processors; errors get the file and the full path."""
        try:
            config = validate_config({"sourcemart": sourcemart, "table": table, "processors": processors})
        except ConfigError as exc:
            self.errors += [f"{source}: {owner}.{e}" for e in exc.errors]
            return None
        dumped = config.model_dump(mode="json", exclude_none=True)
        if "{% endraw %}" in json.dumps(dumped):  # the factory wraps the config in a Jinja raw block
            self.error(source, f"{owner}.processors", "contains the text '{% endraw %}', which Airflow's templating "
                                                      "would read as the end of the config")
            return None
        return {"task_id": group_id, "type": "processors", "config": dumped}

    def sourcemart(self, source: str, sm: Sourcemart) -> None:
        first = len(self.dags)
        self._sourcemart(source, sm)
        # dag_options: the sourcemart's for every DAG it generates, a table's over them for the table's DAGs.
        base = _set(sm.dag_options)
        tables = {t.name: (i, _set(t.dag_options)) for i, t in enumerate(sm.tables)}
        for where, options in [("dag_options", base)] + [(f"tables[{i}].dag_options", {**base, **own})
                                                        for i, own in tables.values() if own]:
            merged = {**DEFAULTS, **options}
            if merged["max_poke_interval_s"] < merged["poke_interval_s"]:
                self.error(source, where, f"max_poke_interval_s ({merged['max_poke_interval_s']}) is less than "
                                          f"poke_interval_s ({merged['poke_interval_s']})")
        for dag in self.dags[first:]:
            own = tables[dag.name][1] if dag.kind != "pipeline" else {}
            dag.options = {**base, **own}

    def _sourcemart(self, source: str, sm: Sourcemart) -> None:
        s = sm.sourcemart
        tables = {t.name: i for i, t in enumerate(sm.tables)}
        for pi, p in enumerate(sm.pipelines):
            for fname in ("upstreams", "downstreams"):
                for j, name in enumerate(getattr(p, fname)):
                    if name not in tables:
                        self.error(source, f"pipelines[{pi}].{fname}[{j}]",
                                   f"unknown table {name!r} (tables of {s}: {', '.join(sorted(tables))})")
        no_collector = {t: (pi, p) for pi, p in enumerate(sm.pipelines) for t in p.skip_downstreams_collectors}
        no_refiner = {t: (pi, p) for pi, p in enumerate(sm.pipelines) for t in p.skip_upstreams_refiners}
        fed_by = {}
        for pi, p in enumerate(sm.pipelines):
            for t in p.downstreams:
                fed_by.setdefault(t, []).append((pi, p))

        for ti, t in enumerate(sm.tables):
            base = f"tables[{ti}]"
            scheduled, collected, refined = (asset_uri(f"{s}/{t.name}/{k}") for k in ("scheduled", "collected", "refined"))
            if t.name in no_collector:
                pi, p = no_collector[t.name]
                why = f"pipelines[{pi}] ({p.name}) lists it in skip_downstreams_collectors"
                self.missing[collected] = f"{t.name} has no Collector: {why}"
                self.missing[scheduled] = f"{t.name} has no Collector, so nothing keeps its schedule: {why}"
                if t.collector is not None:
                    self.error(source, f"{base}.collector", f"declared, but {why}: its raw data comes from that pipeline")
                if t.schedule is not None:
                    self.error(source, f"{base}.schedule", f"set, but {why}: the table runs when that pipeline has run")
            elif t.collector is None:
                self.error(source, f"{base}.collector", "required: give the table collector.processors, or list it in "
                                                        "a sourcemart pipeline's skip_downstreams_collectors")
                self.missing[collected] = f"{t.name} has no Collector"
            else:
                if t.schedule:
                    self.dags.append(DagSpec(f"{s}.{t.name}.schedule", "schedule", s, t.name, source, base,
                                             f"Keeps the schedule of {s}.{t.name}: updates its 'scheduled' asset.",
                                             cron=t.schedule, tasks=[{"task_id": "scheduled", "type": "marker"}],
                                             outlet=scheduled))
                else:
                    self.missing[scheduled] = f"{t.name} has no schedule"
                dag = DagSpec(f"{s}.{t.name}.collector", "collector", s, t.name, source, base,
                              f"Collector of {s}.{t.name}: source -> raw, run by the Functions app.", outlet=collected)
                if t.schedule:
                    dag.waits[scheduled] = f"{base}.schedule"
                for pi, p in fed_by.get(t.name, []):
                    dag.waits[asset_uri(f"{s}/pipelines/{p.name}")] = f"pipelines[{pi}].downstreams"
                for j, ref in enumerate(t.collector.wait_on):
                    dag.waits[asset_uri(ref)] = f"{base}.collector.wait_on[{j}]"
                if not dag.waits:
                    self.error(source, base, "the Collector would never run: set a schedule or collector.wait_on")
                group = self.processors(source, f"{base}.collector", s, t.name, t.collector.processors, "collect")
                dag.tasks = [group, {"task_id": "collected", "type": "marker"}] if group else []
                self.dags.append(dag)

            if t.name in no_refiner:
                pi, p = no_refiner[t.name]
                self.missing[refined] = f"{t.name} has no Refiner: pipelines[{pi}] ({p.name}) lists it in skip_upstreams_refiners"
                if "refiner" in t.model_fields_set and t.refiner is not None:
                    self.error(source, f"{base}.refiner", f"declared, but pipelines[{pi}] ({p.name}) lists the table in "
                                                          "skip_upstreams_refiners")
                continue
            if t.refiner is None:
                self.missing[refined] = f"{t.name} has no Refiner (refiner is null)"
                continue
            dag = DagSpec(f"{s}.{t.name}.refiner", "refiner", s, t.name, source, base,
                          f"Refiner of {s}.{t.name}: raw -> " + (" -> ".join(t.refiner.stages) or "refined") + ".",
                          outlet=refined)
            if t.name in no_collector:
                pi, p = no_collector[t.name]
                dag.waits[asset_uri(f"{s}/pipelines/{p.name}")] = f"pipelines[{pi}].skip_downstreams_collectors"
            else:
                dag.waits[collected] = f"{base}.collector"
            for j, ref in enumerate(t.refiner.wait_on):
                dag.waits[asset_uri(ref)] = f"{base}.refiner.wait_on[{j}]"
            if t.refiner.processors:
                group = self.processors(source, f"{base}.refiner", s, t.name, t.refiner.processors, "refine")
                dag.tasks.append(group or {})
            dag.tasks += [{"task_id": f"stage_{stage}", "type": "stage", "stage": stage} for stage in t.refiner.stages]
            dag.tasks.append({"task_id": "refined", "type": "marker"})
            self.dags.append(dag)

        for pi, p in enumerate(sm.pipelines):
            base = f"pipelines[{pi}]"
            dag = DagSpec(f"{s}.pipelines.{p.name}", "pipeline", s, p.name, source, base,
                          f"Sourcemart pipeline {s}/{p.name}: after {', '.join(p.upstreams)} are collected.",
                          outlet=asset_uri(f"{s}/pipelines/{p.name}"))
            for j, table in enumerate(p.upstreams):
                dag.waits[asset_uri(f"{s}/{table}/collected")] = f"{base}.upstreams[{j}]"
            for j, ref in enumerate(p.wait_on):
                dag.waits[asset_uri(ref)] = f"{base}.wait_on[{j}]"
            group = self.processors(source, base, s, None, p.processors, "process")
            dag.tasks = [group, {"task_id": "done", "type": "marker"}] if group else []
            self.dags.append(dag)

    def check_graph(self) -> None:
        producers: dict[str, DagSpec] = {}
        seen: set[str] = set()
        for dag in self.dags:
            if dag.dag_id in seen:
                self.error(dag.source, dag.path, f"DAG id {dag.dag_id} is generated twice")
            seen.add(dag.dag_id)
            producers[dag.outlet] = dag
        for dag in self.dags:
            for uri, where in sorted(dag.waits.items()):
                if uri.startswith(f"{ASSET_SCHEME}://") and uri not in producers:
                    why = self.missing.get(uri) or "unknown sourcemart, table or pipeline"
                    self.error(dag.source, where, f"{dag.dag_id} waits on {uri}, which no DAG updates ({why})")
        # A cycle through assets would leave every DAG on it waiting for the others forever.
        state: dict[str, int] = {}
        by_id = {d.dag_id: d for d in self.dags}

        def visit(dag: DagSpec, trail: list[str]) -> None:
            state[dag.dag_id] = 1  # on the trail: trail[i + 1] is what trail[i] waits on
            for uri in sorted(dag.waits):
                upstream = producers.get(uri)
                if upstream is None:
                    continue
                if state.get(upstream.dag_id) == 1:
                    loop = trail[trail.index(upstream.dag_id):] + [upstream.dag_id]
                    self.error(dag.source, dag.waits[uri], "cycle through assets: " + " waits on ".join(loop))
                elif state.get(upstream.dag_id) is None:
                    visit(upstream, trail + [upstream.dag_id])
            state[dag.dag_id] = 2

        for dag_id in sorted(by_id):
            if dag_id not in state:
                visit(by_id[dag_id], [dag_id])


def _set(options) -> dict:
    return {} if options is None else options.model_dump(exclude_unset=True)


def compile_sourcemarts(documents: list[tuple[str, Any]], defaults: dict | None = None) -> dict:
    """documents: (file name, parsed JSON) pairs. Returns the compiled document; raises CompileError."""
    c = _Compiler()
    seen: dict[str, str] = {}
    for source, data in sorted(documents, key=lambda d: d[0]):
        try:
            sm = validate_model(Sourcemart, data, source)
        except ConfigError as exc:
            c.errors += [f"{source}: {e}" for e in exc.errors]
            continue
        if sm.sourcemart in seen:
            c.error(source, "sourcemart", f"{sm.sourcemart!r} is also declared in {seen[sm.sourcemart]}")
            continue
        seen[sm.sourcemart] = source
        c.sourcemart(source, sm)
    if not c.errors:
        c.check_graph()
    if c.errors:
        raise CompileError(c.errors)
    dags = sorted(c.dags, key=lambda d: d.dag_id)
    consumers: dict[str, list[str]] = {}
    for d in dags:
        for uri in d.waits:
            consumers.setdefault(uri, []).append(d.dag_id)
    assets = [{"uri": d.outlet, "updated_by": d.dag_id, "schedules": sorted(consumers.get(d.outlet, []))}
              for d in sorted(dags, key=lambda d: d.outlet)]
    external = sorted(u for u in consumers if not u.startswith(f"{ASSET_SCHEME}://"))
    assets += [{"uri": u, "updated_by": None, "schedules": sorted(consumers[u])} for u in external]
    return {"version": FORMAT_VERSION, "defaults": {**DEFAULTS, **(defaults or {})},
            "dags": [d.render() for d in dags], "assets": assets}


def dumps(compiled: dict) -> str:
    """Byte-stable text: same input, same bytes."""
    return json.dumps(compiled, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
