"""Quiz tasks: the overdue-attempt sweeper, scheduled every 5 seconds on every deployment.

Any number of workers may run it at once: `attempts.sweep_overdue` takes overdue attempts with
`FOR UPDATE SKIP LOCKED`, so each is closed (submitted and graded, or abandoned) exactly once.
Passing completes quiz lessons; a course completed that way gets its certificate task after the
commit, and the `/progress` events go out on the same numbered streams as the web app's.
"""

from __future__ import annotations

import logging

from taskiq import Context, TaskiqDepends

from lms_live.certificates.tasks import ISSUE as ISSUE_CERTIFICATE
from lms_live.core.db import utcnow
from lms_live.enrollments.events import publish_progress_with
from lms_live.quizzes import attempts
from lms_live.worker.broker import enqueue, resources, task

log = logging.getLogger("lms_live.quizzes")

SWEEP = "lms.quizzes.sweep"
BATCH = 200


@task(SWEEP, schedule=({"interval": 5},))
async def sweep(ctx: Context = TaskiqDepends()) -> int:
    """Close overdue attempts by their quiz's policy, a batch per transaction, until none is
    left; returns how many were closed."""
    res = resources(ctx)
    total = 0
    while True:
        done: list[attempts.Completion] = []
        async with res.database.transaction() as session:
            closed = await attempts.sweep_overdue(
                session, now=utcnow(), limit=BATCH, completions=done
            )
        for completion in done:
            if completion.change.course_completed:
                await enqueue(
                    ctx.broker,
                    ISSUE_CERTIFICATE,
                    enrollment_id=str(completion.change.enrollment_id),
                )
            await publish_progress_with(
                res.streams, res.emitter, [completion.change], lesson_id=completion.lesson_id
            )
        total += closed
        if closed < BATCH:
            break
    if total:
        log.info("sweeper closed %d overdue attempt(s)", total)
    return total
