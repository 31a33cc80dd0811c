"""Task: runs off the GUI thread, reports progress, can be cancelled, reports errors."""

from __future__ import annotations

import threading
import time

from inspector.errors import InspectorError
from ui.widgets.workers import Task


def test_task_runs_off_the_gui_thread_and_reports(qtbot) -> None:
    seen = {}

    def work(progress, cancelled, n):
        seen["thread"] = threading.current_thread()
        for i in range(n):
            progress(i + 1, n, f"step {i + 1}")
        return n * 2

    task = Task(work, 3)
    steps = []
    task.progress.connect(lambda d, t, s: steps.append((d, t)))
    with qtbot.waitSignal(task.finished, timeout=5000) as blocker:
        task.start()
    assert blocker.args == [6]
    assert seen["thread"] is not threading.main_thread()
    qtbot.waitUntil(lambda: steps == [(1, 3), (2, 3), (3, 3)], timeout=2000)
    assert task.wait()


def test_task_cancel_and_failure(qtbot) -> None:
    def slow(progress, cancelled):
        while not cancelled():
            time.sleep(0.01)

    task = Task(slow)
    with qtbot.waitSignal(task.cancelled, timeout=5000):
        task.start()
        task.cancel()
    assert task.wait()

    def broken(progress, cancelled):
        raise InspectorError("camera 'x' is gone")

    bad = Task(broken)
    with qtbot.waitSignal(bad.failed, timeout=5000) as blocker:
        bad.start()
    assert blocker.args == ["camera 'x' is gone"]
    assert bad.wait()


def test_a_kept_worker_is_held_until_its_thread_ends_and_waited_for_at_exit(qtbot) -> None:
    from ui.widgets.workers import is_kept, keep_alive, wait_for_workers

    gate = threading.Event()
    task = Task(lambda _p, _c: gate.wait(10))
    keep_alive(task, task.done)
    keep_alive(task, task.done)  # idempotent
    task.start()
    assert is_kept(task) and not wait_for_workers(50)  # still running: the exit wait says so
    gate.set()
    assert wait_for_workers(5000)
    qtbot.waitUntil(lambda: not is_kept(task), timeout=2000)  # released once its thread ended


def test_a_heatmap_failure_after_its_view_is_gone_reaches_nobody(qtbot) -> None:
    """The view (and its worker) can be deleted while a heatmap is computing: the task's late failure
    must not be delivered to the deleted worker (a lambda slot would be; a bound slot is dropped)."""
    import shiboken6

    from ui.widgets.heatmap_worker import HeatmapWorker

    worker = HeatmapWorker(station=None)  # explain_candidate on no station fails: a stand-in for a fault
    worker.request("main", "k1", result=None, rank=1)
    task = worker._task
    shiboken6.delete(worker)  # as when the parent view closes, without stop()
    assert task.wait(5000)
    qtbot.wait(200)  # the task's signals are delivered now; an error in a slot fails the test


def test_stopping_a_heatmap_worker_disconnects_a_task_that_just_finished(qtbot) -> None:
    """stop() after the task finished but before its signals arrived: nothing is delivered."""
    from ui.widgets.heatmap_worker import HeatmapWorker

    worker = HeatmapWorker(station=None)
    messages = []
    worker.unavailable.connect(lambda key, message: messages.append(key))
    worker.request("main", "k1", result=None, rank=1)
    task = worker._task
    assert task.wait(5000) and worker.stop(wait_ms=5000)
    qtbot.wait(200)
    assert messages == [] and not worker.busy()
