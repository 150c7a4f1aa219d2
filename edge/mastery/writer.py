"""The mastery store's group commit: one thread owns the SQLite store; requests (statements, evidence and
document writes) share one fsync, and the evidence they bring or void is applied to the BKT state in the same
step (edge.serving.groupcommit)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from edge.mastery.docstore import DocWrite
from edge.mastery.model import MasteryState
from edge.mastery.store import Store, WriteRequest
from edge.serving.groupcommit import GroupCommit

log = logging.getLogger(__name__)


class GroupWriter(GroupCommit[WriteRequest | DocWrite]):
    """`write(req)` returns once the request is durable and its evidence applied (a refused document write
    returns with its `error` set and nothing written); `run_db` runs any store call on the store's thread."""

    def __init__(self, store: Store, state: MasteryState, executor: ThreadPoolExecutor) -> None:
        super().__init__(self._commit_and_apply, executor, name="mastery-writer")
        self.store = store
        self.state = state

    write = GroupCommit.submit
    run_db = GroupCommit.run

    def _commit_and_apply(self, batch: list[WriteRequest | DocWrite]) -> None:
        reqs = [r for r in batch if isinstance(r, WriteRequest)]
        docs = [r for r in batch if isinstance(r, DocWrite)]
        voided = self.store.write_group(reqs, docs)
        new = [ev for r in reqs for ev in r.new_evidence]
        if new:
            replayed = self.state.apply(new, self.store.history)
            if replayed:
                log.info("late evidence: replayed %d (student, skill) cells", replayed)
        if voided:
            self.state.replay(voided, self.store.history)
            log.info("voided evidence: replayed %d (student, skill) cells", len(voided))
