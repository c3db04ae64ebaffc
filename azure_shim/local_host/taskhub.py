"""A one-process Durable Task hub: runs the function app's real orchestrator through the SDK's own
replay engine, on this machine, for `python -m local_runner serve` and the tests.

Production runs on Azure Durable Functions. This hub does what the Durable extension does for one
orchestration, as far as the SDK can see:
  * each episode builds the history JSON (OrchestratorStarted, ExecutionStarted with `Version`,
    TaskScheduled/TaskCompleted/TaskFailed, TimerCreated/TimerFired) and hands it to the
    orchestrator function the app registered (Orchestrator.create's handle: the SDK replays it
    from the start and returns the actions it wants next);
  * new CallActivity / CallActivityWithRetry actions become activity invocations in a small
    worker pool; activity input and output go through the SDK's ActivityTriggerConverter, as the
    Python worker does;
  * a failed attempt of a with-retry activity gets a retry timer and is rescheduled until
    `maxNumberOfAttempts`, with the event ids the SDK expects (see _Episode.order).
It keeps everything in memory: instances live as long as the process. Sub-orchestrations,
external events, entities and durable timers created by user code are not needed by the pipeline
and are refused loudly rather than half-done.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

log = logging.getLogger("local_host.taskhub")

# history event types (azure.durable_functions.models.history.HistoryEventType)
EXECUTION_STARTED, TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED = 0, 4, 5, 6
TIMER_CREATED, TIMER_FIRED, ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED = 10, 11, 12, 13
# action types (azure.durable_functions.models.actions.ActionType)
CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY = 0, 1

RUNNING_STATES = ("Pending", "Running")
OUT_OF_PROC_DATA = "\n\n$OutOfProcData$:"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _event(event_type: int, event_id: int = -1, **fields) -> dict:
    return {"EventType": event_type, "EventId": event_id, "IsPlayed": False, "Timestamp": _now(), **fields}


@dataclass
class _Task:
    """One scheduled activity (and its retries)."""

    name: str
    input: str  # JSON text, as the SDK serialised it
    retry: dict | None  # the action's retryOptions
    attempt: int = 1


@dataclass
class _Arrival:
    """Something that happened outside the orchestrator: an activity ended or a retry timer fired."""

    task_id: int
    result: str | None = None  # JSON text of a success
    error: str | None = None
    timer_id: int | None = None
    terminate: bool = False  # the instance is being terminated


@dataclass
class Instance:
    instance_id: str
    name: str
    input: str  # JSON text
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    runtime_status: str = "Pending"
    custom_status: Any = None
    output: Any = None
    history: list[dict] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    terminating: str | None = None  # the reason, once terminate was asked for
    episode: Any = None

    def status(self) -> dict:
        """The JSON the Durable HTTP API returns for an instance."""
        return {"name": self.name, "instanceId": self.instance_id, "runtimeStatus": self.runtime_status,
                "input": json.loads(self.input) if self.input else None, "customStatus": self.custom_status,
                "output": self.output, "createdTime": self.created, "lastUpdatedTime": self.updated}


class TaskHubError(RuntimeError):
    pass


class TaskHub:
    def __init__(self, functions: list, workers: int = 4, name: str = "pipelineslocal"):
        """functions: the app's get_functions() (azure.functions Function objects)."""
        self.name = name
        self._orchestrators: dict[str, Any] = {}
        self._activities: dict[str, tuple[Any, str]] = {}
        for fn in functions:
            trigger = fn.get_trigger()
            if trigger.type == "orchestrationTrigger":
                self._orchestrators[fn.get_function_name()] = fn.get_user_function()
            elif trigger.type == "activityTrigger":
                self._activities[fn.get_function_name()] = (fn.get_user_function(), trigger.name)
        self._pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="activity")
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()

    # -- the client side ---------------------------------------------------------------------
    def start(self, orchestrator: str, instance_id: str, input_json: str | None) -> Instance:
        if orchestrator not in self._orchestrators:
            raise TaskHubError(f"The function '{orchestrator}' doesn't exist, is disabled, or is not an orchestrator function.")
        with self._lock:
            old = self._instances.get(instance_id)
            if old is not None and old.runtime_status in RUNNING_STATES:
                raise TaskHubError(f"An instance with ID '{instance_id}' already exists and is {old.runtime_status}.")
            inst = Instance(instance_id, orchestrator, input_json or "")
            self._instances[instance_id] = inst
        threading.Thread(target=self._drive, args=(inst,), name=f"orchestration-{instance_id}", daemon=True).start()
        return inst

    def terminate(self, instance_id: str, reason: str) -> bool | None:
        """Stop a running instance (as the extension does: it becomes Terminated with the reason as
        its output; activities already running finish, their results are dropped; nothing more is
        scheduled). True: terminating; False: it had already finished; None: no such instance."""
        with self._lock:
            inst = self._instances.get(instance_id)
            if inst is None:
                return None
            if inst.runtime_status not in RUNNING_STATES or inst.terminating is not None:
                return False
            inst.terminating = reason
            episode = inst.episode
        if episode is not None:
            episode.arrivals.put(_Arrival(-1, terminate=True))
        return True

    def get(self, instance_id: str) -> Instance | None:
        with self._lock:
            return self._instances.get(instance_id)

    def instances(self) -> list[Instance]:
        with self._lock:
            return list(self._instances.values())

    def wait(self, instance_id: str, timeout: float | None = None) -> Instance:
        inst = self.get(instance_id)
        if inst is None or not inst.done.wait(timeout):
            raise TimeoutError(f"instance {instance_id} did not finish in {timeout} s")
        return inst

    def purge(self, instance_id: str | None = None, created_from: dt.datetime | None = None,
              created_to: dt.datetime | None = None, statuses: set[str] | None = None) -> int:
        """Forget instances, as the extension's purge does: one finished instance by id, or every
        instance created in [created_from, created_to) whose status is in `statuses`. Like the Azure
        Storage backend, a purge by time with no status filter takes running instances too (which is
        why the housekeeping function names the finished states). Returns how many were purged."""
        with self._lock:
            if instance_id:
                inst = self._instances.get(instance_id)
                doomed = [inst] if inst is not None and inst.runtime_status not in RUNNING_STATES else []
            else:
                doomed = [i for i in self._instances.values()
                          if (statuses is None or i.runtime_status in statuses)
                          and (created_from is None or dt.datetime.fromisoformat(i.created) >= created_from)
                          and (created_to is None or dt.datetime.fromisoformat(i.created) < created_to)]
            for inst in doomed:
                del self._instances[inst.instance_id]
        return len(doomed)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the orchestration side --------------------------------------------------------------
    def _drive(self, inst: Instance) -> None:
        try:
            _Episode(self, inst).run()
        except Exception as exc:  # a bug here, not in the pipeline: fail the instance visibly
            log.exception("instance %s: task hub error", inst.instance_id)
            self._finish(inst, "Failed", f"local task hub error: {exc}")

    def _finish(self, inst: Instance, status: str, output: Any) -> None:
        inst.runtime_status, inst.output, inst.updated = status, output, _now()
        inst.done.set()

    def _replay(self, inst: Instance) -> dict:
        """One episode of the real orchestrator function over the history so far."""
        context = {"history": inst.history, "instanceId": inst.instance_id, "isReplaying": False,
                   "parentInstanceId": None, "input": inst.input, "upperSchemaVersion": 0}
        try:
            return json.loads(self._orchestrators[inst.name](json.dumps(context)))
        except Exception as exc:  # the SDK raises "<message>\n\n$OutOfProcData$:<state json>"
            message, _, state = str(exc).partition(OUT_OF_PROC_DATA)
            state = json.loads(state) if state else {}
            state["error"] = message
            return state

    def _invoke_activity(self, name: str, input_json: str) -> str:
        if name not in self._activities:
            raise TaskHubError(f"The function '{name}' doesn't exist, is disabled, or is not an activity function.")
        fn, param = self._activities[name]
        payload = ActivityTriggerConverter.decode(meta.Datum(type="json", value=input_json), trigger_metadata=None)
        result = fn(**{param: payload})
        return ActivityTriggerConverter.encode(result, expected_type=None).value


class _Episode:
    """The loop of one instance: replay, schedule what the orchestrator asked for, wait for
    something to happen, append it to the history, replay again."""

    def __init__(self, hub: TaskHub, inst: Instance):
        self.hub, self.inst = hub, inst
        self.tasks: dict[int, _Task] = {}  # event id -> task, for every TaskScheduled
        self.next_id = 0
        self.actions_seen = 0
        self.arrivals: queue.Queue[_Arrival] = queue.Queue()
        self.futures: list[cf.Future] = []
        self.outstanding = 0
        inst.episode = self

    def run(self) -> None:
        hub, inst = self.hub, self.inst
        inst.history += [_event(ORCHESTRATOR_STARTED),
                         _event(EXECUTION_STARTED, Name=inst.name, Input=inst.input or None, Version="")]
        while True:
            state = hub._replay(inst)
            inst.history.append(_event(ORCHESTRATOR_COMPLETED))
            for e in inst.history:
                e["IsPlayed"] = True
            inst.custom_status = state.get("customStatus")
            inst.runtime_status, inst.updated = "Running", _now()
            if state.get("error") is not None:
                self._stop()
                return hub._finish(inst, "Failed", f"Orchestrator function '{inst.name}' failed: {state['error']}")
            if state.get("isDone"):
                self._stop()
                return hub._finish(inst, "Completed", state.get("output"))
            self._schedule_new(state.get("actions") or [])
            if self.outstanding == 0:
                self._stop()
                return hub._finish(inst, "Failed", f"Orchestrator function '{inst.name}' is waiting on nothing "
                                                   "this local task hub can complete")
            if inst.terminating is None:  # (asked before this episode could hear it: see TaskHub.terminate)
                batch = [self.arrivals.get()]
            else:
                batch = []
            while True:  # everything that has arrived meanwhile goes into the same episode
                try:
                    batch.append(self.arrivals.get_nowait())
                except queue.Empty:
                    break
            if inst.terminating is not None:
                self._stop()
                return hub._finish(inst, "Terminated", inst.terminating)
            inst.history.append(_event(ORCHESTRATOR_STARTED))
            for arrival in self.order(batch):
                self._record(arrival)

    def _schedule_new(self, actions: list) -> None:
        flat = [a for group in actions for a in (group if isinstance(group, list) else [group])]
        for action in flat[self.actions_seen:]:
            kind = action.get("actionType")
            if kind not in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
                raise TaskHubError(f"action type {kind} is not supported by the local task hub")
            retry = action.get("retryOptions") if kind == CALL_ACTIVITY_WITH_RETRY else None
            self._schedule(_Task(action["functionName"], action.get("input") or "null", retry))
        self.actions_seen = len(flat)

    def _schedule(self, task: _Task) -> None:
        task_id = self._take_id()
        self.tasks[task_id] = task
        self.inst.history.append(_event(TASK_SCHEDULED, task_id, Name=task.name, Input=task.input))
        self.outstanding += 1
        self.futures.append(self.hub._pool.submit(self._run_activity, task_id, task))

    def _run_activity(self, task_id: int, task: _Task) -> None:
        try:
            self.arrivals.put(_Arrival(task_id, result=self.hub._invoke_activity(task.name, task.input)))
        except Exception as exc:
            self.arrivals.put(_Arrival(task_id, error=str(exc) or type(exc).__name__))

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _is_reserving(self, a: _Arrival) -> bool:
        """Does the SDK take a new sequence number when it replays this arrival's event?
        A failed with-retry attempt takes one for its retry timer; a fired retry timer with
        attempts left takes one for the rescheduled attempt."""
        task = self.tasks[a.task_id]
        if a.timer_id is not None:
            return task.attempt < task.retry["maxNumberOfAttempts"]
        return a.error is not None and task.retry is not None

    def order(self, batch: list[_Arrival]) -> list[_Arrival]:
        """Events that take a sequence number go first. They never resume the orchestrator, so the
        numbers the hub hands out here are the ones the SDK assigns while replaying them; new
        actions that a resumed orchestrator yields later in the episode get the numbers after."""
        return [a for a in batch if self._is_reserving(a)] + [a for a in batch if not self._is_reserving(a)]

    def _record(self, a: _Arrival) -> None:
        task, history = self.tasks[a.task_id], self.inst.history
        if a.timer_id is not None:
            history.append(_event(TIMER_FIRED, TimerId=a.timer_id, FireAt=_now()))
            self.outstanding -= 1
            if task.attempt < task.retry["maxNumberOfAttempts"]:
                task.attempt += 1
                self._schedule(task)
            return
        self.outstanding -= 1
        if a.error is None:
            history.append(_event(TASK_COMPLETED, TaskScheduledId=a.task_id, Result=a.result))
            return
        history.append(_event(TASK_FAILED, TaskScheduledId=a.task_id,
                              Reason=f"Activity function '{task.name}' failed: {a.error}", Details=""))
        if task.retry is None:
            return
        # Durable waits firstRetryInterval before each retry; after the last attempt the SDK still
        # expects that timer (then fails the task), which need not make anyone wait.
        last = task.attempt >= task.retry["maxNumberOfAttempts"]
        delay = 0.0 if last else task.retry["firstRetryIntervalInMilliseconds"] / 1000
        timer_id = self._take_id()
        history.append(_event(TIMER_CREATED, timer_id, FireAt=_now()))
        self.outstanding += 1
        timer = threading.Timer(delay, self.arrivals.put, args=(_Arrival(a.task_id, timer_id=timer_id),))
        timer.daemon = True
        timer.start()
        log.info("%s: %s attempt %d failed; %s", self.inst.instance_id, task.name, task.attempt,
                 "no attempts left" if last else f"retrying in {delay:g} s")

    def _stop(self) -> None:
        for f in self.futures:  # units not started yet are not started; running ones finish
            f.cancel()
