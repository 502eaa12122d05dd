"""Deploy tasks in the database: what a node that does not run a task answers, in batches, and after its node died."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from packyard.db import Database, utcnow
from packyard.publishing.deploy import tasks as tasks_module
from packyard.publishing.deploy.tasks import Tasks
from packyard.publishing.errors import NotFound
from packyard.publishing.models import DeployTask, DeployTaskLine


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    database.upgrade()
    return database


def test_another_node_answers_as_the_running_one(db: Database) -> None:
    async def scenario() -> None:
        here, there = Tasks(db, "a:1"), Tasks(db, "b:2")
        task = await here.create("guid-1")
        assert (await there.poll(task.id, 0, 0))["last"] == 0  # in the database before its id is handed out
        for number in range(500):
            task.log(f"line {number}")
        waited = asyncio.create_task(there.poll(task.id, 0, 5))
        remote = await waited  # woken by the first batch the writer commits
        assert remote["output"] and remote["output"] == task.lines[: remote["last"]]
        task.result = {"type": "done"}
        task.finish(0)
        await here.flush()
        assert await there.poll(task.id, 0, 0) == task.as_json(0)
        assert await there.poll(task.id, 498, 0) == task.as_json(498)
        assert (await there.get(task.id)).content_guid == "guid-1"
        with db.session() as session:  # far fewer writes than lines: one batch per interval
            assert session.scalar(select(func.count()).select_from(DeployTaskLine)) == 500

    asyncio.run(scenario())


def test_a_long_poll_elsewhere_returns_on_a_new_line_or_at_its_timeout(db: Database) -> None:
    async def scenario() -> None:
        here, there = Tasks(db, "a:1"), Tasks(db, "b:2")
        task = await here.create("g")
        began = time.monotonic()
        assert (await there.poll(task.id, 0, 0.6))["output"] == []
        assert 0.5 < time.monotonic() - began < 1.5
        asyncio.get_running_loop().call_later(0.3, task.log, "hello")
        began = time.monotonic()
        assert (await there.poll(task.id, 0, 5))["output"] == ["hello"]
        assert time.monotonic() - began < 1.5
        task.finish()
        here.close()

    asyncio.run(scenario())


def test_a_task_whose_node_stopped_reads_as_failed(db: Database) -> None:
    async def scenario() -> None:
        gone = Tasks(db, "gone:42")
        task = await gone.create("g")
        task.log("Launching ...")
        await gone.flush()
        assert gone._writer is not None
        gone._writer.cancel()  # it writes nothing more, and never says the task finished: its node died
        with db.session() as session:
            old = utcnow() - timedelta(seconds=tasks_module.LEASE + 5)
            session.execute(update(DeployTask).values(heartbeat_at=old))
        answer = await Tasks(db, "b:2").poll(task.id, 0, 1)
        assert answer["finished"] and answer["code"] == 1
        assert "(`gone:42`) stopped before the task finished" in answer["error"] and "deploy again" in answer["error"]
        assert answer["output"] == ["Launching ..."]

    asyncio.run(scenario())


def test_old_tasks_leave_with_their_lines_and_unknown_ones_are_not_found(db: Database) -> None:
    async def scenario() -> None:
        tasks = Tasks(db, "a:1")
        task = await tasks.create("g")
        task.log("one")
        task.finish()
        await tasks.flush()
        with db.session() as session:
            hour_ago = utcnow() - timedelta(seconds=tasks_module.KEEP_FINISHED + 1)
            session.execute(update(DeployTask).values(finished_at=hour_ago))
        await tasks.create("g")  # a create clears what is over an hour old
        with db.session() as session:
            assert session.get(DeployTask, task.id) is None
            assert session.scalar(select(func.count()).select_from(DeployTaskLine)) == 0
        with pytest.raises(NotFound, match="no task `nope`"):
            await Tasks(db, "b:2").poll("nope", 0, 0)
        tasks.close()

    asyncio.run(scenario())


def test_a_task_running_at_shutdown_ends_as_failed(db: Database) -> None:
    async def scenario() -> None:
        here = Tasks(db, "a:1")
        task = await here.create("g")
        task.log("Launching ...")
        here.close()
        answer = await Tasks(db, "b:2").poll(task.id, 0, 0)
        assert answer["finished"] and answer["code"] == 1 and "stopped before it finished" in answer["error"]
        assert answer["output"][-1].startswith("Error: the server running this deploy stopped")

    asyncio.run(scenario())


def test_each_contents_newest_task_stays_as_its_deploy_log(db: Database) -> None:
    async def scenario() -> None:
        tasks = Tasks(db, "a:1")
        first = await tasks.create("kept")
        for line in ("Deploying bundle 1.", "Deployed in 1.00 s."):
            first.log(line)
        first.finish()
        await tasks.flush()
        with db.session() as session:
            hour_ago = utcnow() - timedelta(seconds=tasks_module.KEEP_FINISHED + 1)
            session.execute(update(DeployTask).values(finished_at=hour_ago))
        other = await tasks.create("other")  # clears what is over an hour old, but not a content's last task
        other.log("Deploying bundle 9.")
        await tasks.flush()
        with db.session() as session:
            log = tasks_module.deploy_log(session, "kept", 50)
            assert log[0].startswith(f"-- task {first.id} on a:1, started ") and log[1:] == first.lines
            assert tasks_module.deploy_log(session, "kept", 1) == ["Deployed in 1.00 s."]
            assert tasks_module.deploy_log(session, "nothing", 50) == []
        tasks.close()

    asyncio.run(scenario())
