"""The deploy-time compiler: every wiring case and every validation error, without Airflow."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from dag_compiler.compile import CompileError, compile_sourcemarts, dumps
from tests.conftest import ROOT


def blob(path):
    return {"type": "blob", "connection": "RAW_STORAGE", "container": "raw", "path": path}


def copy_proc(name):
    return {"processor_name": "copy", "processor_type": "copy",
            "processor_config": {"src": {"type": "http", "url": f"https://api.example.com/{name}.zip"}, "dest": blob(f"{name}/")}}


UNZIP = {"processor_name": "decompress", "processor_type": "zip", "processor_config": {"dest": blob("x/extracted/")}}
TRANSFORM = {"processor_name": "transform", "processor_type": "JSONL",
             "processor_config": {"src": blob("x/extracted/**/*.jsonl"), "dest": blob("x/csv/"), "columns": [{"name": "id", "path": "id"}]}}


def table(name, schedule="0 2 * * *", **more):
    return {"name": name, "schedule": schedule, "collector": {"processors": [copy_proc(name)]}, **more}


def compiled(*docs) -> dict:
    return compile_sourcemarts([(f"sourcemarts/{d['sourcemart']}.json", d) for d in docs])


def dags(plan) -> dict:
    return {d["dag_id"]: d for d in plan["dags"]}


def errors(*docs) -> list[str]:
    with pytest.raises(CompileError) as info:
        compiled(*docs)
    return info.value.errors


def task_ids(dag):
    return [t["task_id"] for t in dag["tasks"]]


def test_plain_table_gets_schedule_collector_refiner():
    plan = dags(compiled({"sourcemart": "acme", "tables": [table("orders", refiner={"stages": ["bronze", "silver", "edw"]})]}))
    assert set(plan) == {"acme.orders.schedule", "acme.orders.collector", "acme.orders.refiner"}
    sched, coll, ref = plan["acme.orders.schedule"], plan["acme.orders.collector"], plan["acme.orders.refiner"]
    assert sched["schedule"] == {"cron": "0 2 * * *"} and sched["outlets"] == ["sourcemart://acme/orders/scheduled"]
    assert task_ids(sched) == ["scheduled"]
    assert coll["schedule"] == {"assets": ["sourcemart://acme/orders/scheduled"]}  # never on cron itself
    assert coll["outlets"] == ["sourcemart://acme/orders/collected"] and task_ids(coll) == ["collect", "collected"]
    assert coll["tasks"][0]["config"]["processors"][0]["processor_name"] == "copy"
    assert coll["tasks"][0]["config"]["sourcemart"] == "acme" and coll["tasks"][0]["config"]["table"] == "orders"
    assert ref["schedule"] == {"assets": ["sourcemart://acme/orders/collected"]}
    assert task_ids(ref) == ["stage_bronze", "stage_silver", "stage_edw", "refined"]
    assert ref["outlets"] == ["sourcemart://acme/orders/refined"]


def test_table_level_collector_and_refiner_processors():
    t = table("returns", collector={"processors": [copy_proc("returns"), UNZIP]},
              refiner={"processors": [TRANSFORM], "stages": ["bronze"]})
    plan = dags(compiled({"sourcemart": "acme", "tables": [t]}))
    coll = plan["acme.returns.collector"]
    assert [p["processor_name"] for p in coll["tasks"][0]["config"]["processors"]] == ["copy", "decompress"]
    ref = plan["acme.returns.refiner"]
    assert task_ids(ref) == ["refine", "stage_bronze", "refined"]  # refiner processors before the stages
    assert ref["tasks"][0]["type"] == "processors" and ref["tasks"][0]["config"]["processors"][0]["processor_name"] == "transform"


def sourcemart_with_pipeline(**pipeline_overrides):
    pipeline = {"name": "unpack", "upstreams": ["drop_a", "drop_b"], "downstreams": ["orders", "customers"],
                "processors": [{**UNZIP, "processor_config": {"src": blob("drop_*/*.zip"), "dest": blob("unpacked/")}}, TRANSFORM]}
    pipeline.update(pipeline_overrides)
    tables = [table("drop_a"), table("drop_b", "0 3 * * *"), table("orders", "30 3 * * *"),
              {"name": "customers"}]
    if "customers" not in pipeline.get("skip_downstreams_collectors", []):
        tables[3] = table("customers", None, collector={"processors": [copy_proc("customers")]})
    return {"sourcemart": "acme", "tables": tables, "pipelines": [pipeline]}


def test_shared_processors_run_after_all_upstream_collectors_and_before_downstream_collectors():
    plan = dags(compiled(sourcemart_with_pipeline()))
    pipe = plan["acme.pipelines.unpack"]
    assert pipe["schedule"] == {"assets": ["sourcemart://acme/drop_a/collected", "sourcemart://acme/drop_b/collected"]}
    assert pipe["outlets"] == ["sourcemart://acme/pipelines/unpack"] and task_ids(pipe) == ["process", "done"]
    assert [p["processor_name"] for p in pipe["tasks"][0]["config"]["processors"]] == ["decompress", "transform"]
    # a downstream Collector waits on its own schedule and on the pipeline; one without a schedule on the pipeline only
    assert plan["acme.orders.collector"]["schedule"]["assets"] == ["sourcemart://acme/orders/scheduled",
                                                                    "sourcemart://acme/pipelines/unpack"]
    assert plan["acme.customers.collector"]["schedule"]["assets"] == ["sourcemart://acme/pipelines/unpack"]
    assert "acme.customers.schedule" not in plan
    assert "acme.drop_a.refiner" in plan  # not skipped: upstream tables keep their Refiners


def test_skip_upstreams_refiners():
    plan = dags(compiled(sourcemart_with_pipeline(skip_upstreams_refiners=["drop_a", "drop_b"])))
    assert "acme.drop_a.refiner" not in plan and "acme.drop_b.refiner" not in plan
    assert "acme.drop_a.collector" in plan and "acme.orders.refiner" in plan


def test_skip_downstreams_collectors():
    plan = dags(compiled(sourcemart_with_pipeline(skip_downstreams_collectors=["customers"])))
    assert "acme.customers.collector" not in plan and "acme.customers.schedule" not in plan
    assert plan["acme.customers.refiner"]["schedule"] == {"assets": ["sourcemart://acme/pipelines/unpack"]}
    assert plan["acme.orders.refiner"]["schedule"] == {"assets": ["sourcemart://acme/orders/collected"]}


def test_chained_dags_across_sourcemarts_and_external_assets():
    acme = {"sourcemart": "acme", "tables": [table("orders")]}
    globex = {"sourcemart": "globex", "tables": [
        table("invoices", None, collector={"processors": [copy_proc("invoices")],
                                           "wait_on": ["acme/orders/refined", "s3://partner-bucket/ready"]},
              refiner={"stages": ["bronze"], "wait_on": ["acme/orders/collected"]})]}
    plan = compiled(acme, globex)
    by_id = dags(plan)
    assert by_id["globex.invoices.collector"]["schedule"]["assets"] == ["s3://partner-bucket/ready",
                                                                        "sourcemart://acme/orders/refined"]
    assert by_id["globex.invoices.refiner"]["schedule"]["assets"] == ["sourcemart://acme/orders/collected",
                                                                      "sourcemart://globex/invoices/collected"]
    assets = {a["uri"]: a for a in plan["assets"]}
    assert assets["sourcemart://acme/orders/refined"] == {"uri": "sourcemart://acme/orders/refined",
                                                          "updated_by": "acme.orders.refiner",
                                                          "schedules": ["globex.invoices.collector"]}
    assert assets["s3://partner-bucket/ready"]["updated_by"] is None


def test_refiner_null_means_no_refiner():
    plan = dags(compiled({"sourcemart": "acme", "tables": [table("audit", refiner=None)]}))
    assert set(plan) == {"acme.audit.schedule", "acme.audit.collector"}


def test_output_is_deterministic_and_independent_of_file_order():
    a, b = sourcemart_with_pipeline(), {"sourcemart": "globex", "tables": [table("x")]}
    first = dumps(compile_sourcemarts([("sourcemarts/acme.json", a), ("sourcemarts/globex.json", b)]))
    second = dumps(compile_sourcemarts([("sourcemarts/globex.json", copy.deepcopy(b)), ("sourcemarts/acme.json", copy.deepcopy(a))]))
    assert first == second
    assert [d["dag_id"] for d in json.loads(first)["dags"]] == sorted(d["dag_id"] for d in json.loads(first)["dags"])


def test_the_shipped_plan_is_what_the_shipped_sourcemarts_compile_to():
    proc = subprocess.run([sys.executable, "-m", "dag_compiler", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    plan = dags(json.loads((ROOT / "dags" / "sourcemarts.compiled.json").read_text()))
    kinds = {d["kind"] for d in plan.values()}
    assert kinds == {"schedule", "collector", "refiner", "pipeline"}


# -- errors: each names the file and the JSON path -------------------------------------------

def test_unknown_table_in_a_pipeline():
    doc = sourcemart_with_pipeline(upstreams=["drop_a", "drop_c"])
    assert errors(doc) == ["sourcemarts/acme.json: pipelines[0].upstreams[1]: unknown table 'drop_c' "
                           "(tables of acme: customers, drop_a, drop_b, orders)"]


def test_skip_list_outside_the_pipeline_tables():
    doc = sourcemart_with_pipeline(skip_upstreams_refiners=["orders"])
    assert errors(doc) == ["sourcemarts/acme.json: pipelines[0].skip_upstreams_refiners[0]: 'orders' is not one of "
                           "this pipeline's upstreams"]


def test_a_table_skipped_and_required_at_once():
    doc = sourcemart_with_pipeline(skip_downstreams_collectors=["customers"])
    doc["pipelines"].append({"name": "enrich", "upstreams": ["customers"], "processors": [TRANSFORM]})
    assert errors(doc) == [
        "sourcemarts/acme.json: pipelines[1].upstreams[0]: acme.pipelines.enrich waits on "
        "sourcemart://acme/customers/collected, which no DAG updates (customers has no Collector: pipelines[0] "
        "(unpack) lists it in skip_downstreams_collectors)"]
    doc = sourcemart_with_pipeline(skip_upstreams_refiners=["drop_a"])
    doc["tables"][2]["collector"]["wait_on"] = ["acme/drop_a/refined"]
    (err,) = errors(doc)
    assert err.startswith("sourcemarts/acme.json: tables[2].collector.wait_on[0]: acme.orders.collector waits on "
                          "sourcemart://acme/drop_a/refined, which no DAG updates (drop_a has no Refiner")


def test_a_skipped_table_that_declares_what_is_skipped():
    doc = sourcemart_with_pipeline(skip_downstreams_collectors=["orders"])
    found = errors(doc)
    assert "sourcemarts/acme.json: tables[2].collector: declared, but pipelines[0] (unpack) lists it in " \
           "skip_downstreams_collectors: its raw data comes from that pipeline" in found
    assert any(e.startswith("sourcemarts/acme.json: tables[2].schedule: set, but") for e in found)


def test_cycle_across_assets():
    acme = {"sourcemart": "acme", "tables": [table("a", None, collector={"processors": [copy_proc("a")],
                                                                       "wait_on": ["globex/b/refined"]})]}
    globex = {"sourcemart": "globex", "tables": [table("b", None, collector={"processors": [copy_proc("b")],
                                                                           "wait_on": ["acme/a/refined"]})]}
    (err,) = errors(acme, globex)
    assert err.startswith("sourcemarts/")
    assert "cycle through assets: " in err
    for dag_id in ("acme.a.collector", "acme.a.refiner", "globex.b.collector", "globex.b.refiner"):
        assert dag_id in err


def test_processors_are_checked_by_the_core_validation():
    bad = copy.deepcopy(TRANSFORM)
    bad["processor_config"]["dest"]["path"] = "x/out.csv"
    doc = {"sourcemart": "acme", "tables": [table("t", refiner={"processors": [bad]})]}
    assert errors(doc) == ["sourcemarts/acme.json: tables[0].refiner.processors[0].processor_config.dest.path: "
                           "must be a folder (end with '/'); output names are derived from sources"]


def test_model_errors_name_the_json_path():
    doc = {"sourcemart": "acme", "tables": [table("t", colector={})]}
    assert errors(doc) == ["sourcemarts/acme.json: tables[0].colector: Extra inputs are not permitted"]
    doc = {"sourcemart": "acme", "tables": [table("t", collector={"processors": [copy_proc("t")], "wait_on": ["acme/t"]})]}
    (err,) = errors(doc)
    assert err.startswith("sourcemarts/acme.json: tables[0].collector.wait_on[0]: 'acme/t' is not an asset reference")
    doc = {"sourcemart": "acme", "tables": [table("t", schedule="every day")]}
    (err,) = errors(doc)
    assert err.startswith("sourcemarts/acme.json: tables[0].schedule: String should match pattern")
    doc = {"sourcemart": "acme", "tables": [table("t"), table("t")]}
    assert errors(doc) == ["sourcemarts/acme.json: tables[1].name: 't' is declared twice"]


def test_a_table_without_a_way_to_collect_or_to_run():
    assert errors({"sourcemart": "acme", "tables": [{"name": "t"}]}) == [
        "sourcemarts/acme.json: tables[0].collector: required: give the table collector.processors, or list it in "
        "a sourcemart pipeline's skip_downstreams_collectors"]
    assert errors({"sourcemart": "acme", "tables": [table("t", None)]}) == [
        "sourcemarts/acme.json: tables[0]: the Collector would never run: set a schedule or collector.wait_on"]


def test_the_same_sourcemart_in_two_files():
    doc = {"sourcemart": "acme", "tables": [table("t")]}
    with pytest.raises(CompileError) as info:
        compile_sourcemarts([("sourcemarts/a.json", doc), ("sourcemarts/b.json", doc)])
    assert info.value.errors == ["sourcemarts/b.json: sourcemart: 'acme' is also declared in sourcemarts/a.json"]


def test_cli_names_file_line_and_column_of_bad_json(tmp_path):
    (tmp_path / "ok.json").write_text(json.dumps({"sourcemart": "acme", "tables": [table("t")]}))
    (tmp_path / "bad.json").write_text('{"sourcemart": "globex",\n "tables": [,]}\n')
    proc = subprocess.run([sys.executable, "-m", "dag_compiler", "--sourcemarts", str(tmp_path), "--out",
                           str(tmp_path / "plan.json")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{tmp_path}/bad.json:2:13: not valid JSON" in proc.stderr
    assert not (tmp_path / "plan.json").exists()


def test_readme_shows_the_dags_of_the_shipped_sourcemarts():
    from dag_compiler.__main__ import describe

    plan = json.loads((ROOT / "dags" / "sourcemarts.compiled.json").read_text())
    assert describe(plan) in (ROOT / "README.md").read_text()


def test_a_config_that_would_break_out_of_the_jinja_raw_block():
    bad = copy.deepcopy(TRANSFORM)
    bad["processor_config"]["columns"][0]["name"] = "a{% endraw %}{{ 7 * 7 }}"
    doc = {"sourcemart": "acme", "tables": [table("t", refiner={"processors": [bad]})]}
    assert errors(doc) == ["sourcemarts/acme.json: tables[0].refiner.processors: contains the text '{% endraw %}', "
                           "which Airflow's templating would read as the end of the config"]


def test_dag_options_per_sourcemart_and_per_table_are_compiled_into_the_plan():
    pipeline = {"name": "p", "upstreams": ["a"], "processors": [TRANSFORM]}
    plan = compiled({"sourcemart": "s", "dag_options": {"poke_interval_s": 2, "max_poke_interval_s": 30},
                     "tables": [table("a"), table("b", dag_options={"poke_interval_s": 10, "timeout_s": 600,
                                                                     "is_paused_upon_creation": False})],
                     "pipelines": [pipeline]})
    by_id = dags(plan)
    for dag_id in ("s.a.schedule", "s.a.collector", "s.a.refiner", "s.pipelines.p"):
        assert by_id[dag_id]["options"] == {"poke_interval_s": 2, "max_poke_interval_s": 30}, dag_id
    for dag_id in ("s.b.schedule", "s.b.collector", "s.b.refiner"):
        assert by_id[dag_id]["options"] == {"poke_interval_s": 10, "max_poke_interval_s": 30, "timeout_s": 600,
                                            "is_paused_upon_creation": False}, dag_id
    assert {k: plan["defaults"][k] for k in ("poke_interval_s", "max_poke_interval_s", "timeout_s")} == {
        "poke_interval_s": 5, "max_poke_interval_s": 60, "timeout_s": 21600}  # a few seconds, backing off to 60
    assert "options" not in dags(compiled({"sourcemart": "t", "tables": [table("a")]}))["t.a.collector"]


def test_dag_options_errors_name_the_json_path():
    assert errors({"sourcemart": "s", "tables": [table("a", dag_options={"poke_interval_s": 90})]}) == [
        "sourcemarts/s.json: tables[0].dag_options: max_poke_interval_s (60) is less than poke_interval_s (90)"]
    found = errors({"sourcemart": "s", "dag_options": {"poke_interval_s": 0, "timeout": 5}, "tables": [table("a")]})
    assert any("dag_options.poke_interval_s" in e and "greater than or equal to 1" in e for e in found), found
    assert any("dag_options.timeout" in e for e in found), found  # an unknown option is refused, not ignored
