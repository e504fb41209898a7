"""A unique cron job runs once per firing even when a worker enqueues that firing late (its Redis was down at
the moment, or it was busy): the firing's result is kept long enough for arq to refuse the late copy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from arq.worker import func
from doubles.recording_log import RecordingLog

from bot.job_codec import deserialize, serialize
from bot.jobs import QUEUE
from bot.settings import load_settings
from worker.app import CRON_RESULT_KEEP_S, build_worker, unique_cron
from worker.jobs import queue as job_queue
from worker.ops.liveness import Liveness
from worker.ops.steady_worker import SteadyWorker


def test_every_unique_cron_keeps_its_result_for_an_hour(tmp_path: Path, app_keypair: Any) -> None:
    settings = load_settings({"MULL_APP_ID": "1", "MULL_PRIVATE_KEY": app_keypair[0],
                              "MULL_LLM_BASE_URL": "http://model.invalid/v1", "MULL_LLM_MODEL": "m",
                              "MULL_SANDBOX": "false", "MULL_DATA_DIR": str(tmp_path)}, env_file=None)
    worker = build_worker(settings, "redis://127.0.0.1:1/0", burst=True, handle_signals=False)
    unique = {job.name: job.keep_result_s for job in worker.cron_jobs if job.unique}
    assert set(unique) == {"cron:redeliver_failed", "cron:sweep_backlogs", "cron:send_digests", "cron:expire_sessions"}
    assert set(unique.values()) == {CRON_RESULT_KEEP_S}


def test_a_firing_enqueued_late_by_another_worker_does_not_run_again(redis_url: str) -> None:
    runs: list[str] = []

    async def tick(ctx: dict[str, Any]) -> None:
        runs.append(ctx["job_id"])

    async def scenario() -> Any:
        redis = job_queue.pool(redis_url, keep_trying=1)
        worker = SteadyWorker([func(tick, name="cron:tick")], log=RecordingLog(), liveness=Liveness(redis),
                              queue_name=QUEUE, poll_delay=0.01, burst=True, handle_signals=False,
                              redis_pool=redis, job_serializer=serialize, job_deserializer=deserialize,
                              cron_jobs=[unique_cron(tick, name="cron:tick", second=0)])
        queue = await job_queue.connect(redis_url)
        firing = "cron:tick:1764590400000"
        assert await queue.enqueue_job("cron:tick", _job_id=firing)  # the first worker's copy
        await asyncio.wait_for(worker.main(), 20)
        late = await queue.enqueue_job("cron:tick", _job_id=firing)  # another worker's, after the outage
        await queue.aclose()
        await worker.close()
        return late

    assert asyncio.run(scenario()) is None
    assert runs == ["cron:tick:1764590400000"]
