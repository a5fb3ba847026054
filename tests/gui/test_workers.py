"""TaskWorker: one thread per job, events forwarded, exactly one ending signal."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from clipstudio.engine.errors import DataError
from clipstudio.gui.workers import TaskWorker


@pytest.fixture(autouse=True)
def engine_already_imported(monkeypatch):
    """These jobs need no engine; run alone on a busy machine, the real start-up import took longer than a
    test's 5 s wait (engine.warm_up has its own tests)."""
    monkeypatch.setattr("clipstudio.gui.workers.import_engine", lambda should_stop: {})


@dataclass(frozen=True)
class Tick:
    step: int


def _run(qtbot, worker: TaskWorker, ending: str, timeout_ms: int = 5000):
    """Start ``worker`` and return (events, ending signal's arguments); fails on any other ending."""
    events, endings = [], []
    worker.event_emitted.connect(events.append)
    worker.succeeded.connect(lambda result: endings.append(("succeeded", (result,))))
    worker.failed.connect(lambda message, details: endings.append(("failed", (message, details))))
    worker.cancelled.connect(lambda: endings.append(("cancelled", ())))
    with qtbot.waitSignal(getattr(worker, ending), timeout=timeout_ms):
        worker.start()
    assert worker.wait(5000)
    qtbot.wait(10)  # deliver anything still queued, to prove there is only one ending
    assert [name for name, _ in endings] == [ending]
    return events, endings[0][1]


def test_succeeded_carries_the_result_and_events_arrive_in_order(qtbot):
    def job(callback, should_stop):
        for step in range(3):
            callback(Tick(step))
        return {"accuracy": 0.75}

    events, (result,) = _run(qtbot, TaskWorker(job, name="count"), "succeeded")
    assert events == [Tick(0), Tick(1), Tick(2)]
    assert result == {"accuracy": 0.75}


def test_user_error_fails_with_its_sentence_and_no_traceback(qtbot):
    def job(callback, should_stop):
        raise DataError("The folder has no images.")

    _, (message, details) = _run(qtbot, TaskWorker(job, name="read data"), "failed")
    assert message == "The folder has no images."
    assert details == ""


def test_bug_fails_with_a_traceback_in_the_details(qtbot):
    def job(callback, should_stop):
        return {}["missing"]

    _, (message, details) = _run(qtbot, TaskWorker(job, name="evaluate"), "failed")
    assert message.startswith("evaluate failed")
    assert "Traceback" in details and "KeyError" in details


def test_cancel_stops_the_job_at_its_next_check(qtbot):
    started = []

    def job(callback, should_stop):
        started.append(True)
        deadline = time.monotonic() + 10
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(0.005)
        return "finished anyway"

    worker = TaskWorker(job, name="long job")
    endings = []
    worker.succeeded.connect(lambda r: endings.append("succeeded"))
    worker.cancelled.connect(lambda: endings.append("cancelled"))
    worker.start()
    qtbot.waitUntil(lambda: bool(started), timeout=5000)
    with qtbot.waitSignal(worker.cancelled, timeout=5000):
        worker.cancel()
    assert worker.wait(5000)
    qtbot.wait(10)
    assert endings == ["cancelled"]


def test_the_thread_guard_sees_a_running_worker(qtbot, worker_tracker):
    def job(callback, should_stop):
        while not should_stop():
            time.sleep(0.005)

    worker = TaskWorker(job, name="blocking")
    worker.start()
    qtbot.waitUntil(worker.isRunning, timeout=5000)
    assert worker_tracker.running() == [worker]
    worker.cancel()
    assert worker.wait(5000)
    assert worker_tracker.running() == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
def test_jobs_run_at_a_lower_priority_than_the_gui_thread(qtbot):
    def my_nice(callback, should_stop):
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    gui_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    _, (background,) = _run(qtbot, TaskWorker(my_nice, name="background"), "succeeded")
    _, (foreground,) = _run(qtbot, TaskWorker(my_nice, name="foreground", background=False), "succeeded")
    assert foreground == gui_nice
    assert background == min(gui_nice + TaskWorker.BACKGROUND_NICE, 19)


def test_a_job_without_the_engine_does_not_wait_for_the_start_up_import(qtbot, monkeypatch):
    # The start-up warm-up holds the import for a minute on a busy machine; reading a folder needs none of it.
    importing = threading.Event()
    monkeypatch.setattr("clipstudio.gui.workers.import_engine", lambda should_stop: importing.wait(30))
    try:
        _, (result,) = _run(qtbot, TaskWorker(lambda cb, stop: "read", needs_engine=False), "succeeded", 2000)
        assert result == "read"
        assert not importing.is_set()
    finally:
        importing.set()


def test_opening_a_dataset_imports_neither_torch_nor_transformers(tmp_path, make_class_folders):
    # What lets the Data screen's read job skip the warm-up: run it in a fresh interpreter and look.
    sample_folder = make_class_folders(tmp_path / "data", {"normal": 3, "pneumonia": 3})
    code = (
        "import sys\n"
        "from clipstudio.gui.screens.data_screen import load_job\n"
        f"load_job({str(sample_folder)!r}, None, None)(lambda event: None, lambda: False)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'peft') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
