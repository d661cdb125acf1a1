"""Kombu's filesystem transport, with atomic writes (the embedded mode's broker).

Stock kombu creates the message file, then locks and writes it; a consumer listing the folder in
between moves and reads an empty file and the Celery worker dies on the JSON error (seen in
`tbatch demo`). Here a message is written under a name the consumer ignores and renamed into
place, which is atomic on one filesystem. The exchange table has the same flaw (``open("wb")``
truncates it before the lock is taken, so a concurrent publish read an empty table: seen in
``tests/unit/test_broker_fs.py`` under load); it is rewritten the same way, under a lock file,
and on every bind (see ``queue_bind``).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

ALIAS = "tbatchfs"


class Channel(filesystem.Channel):
    # kombu types _put twice (virtual base vs filesystem) with different names; match the latter.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.part"  # "<queue>.msg.part" never matches the consumer's filter
        with open(partial, "wb") as fh:
            fh.write(dumps(payload).encode())
        os.replace(partial, final)

    def queue_bind(
        self,
        queue: Any,
        exchange: Any = None,
        routing_key: Any = "",
        arguments: Any = None,
        **kwargs: Any,
    ) -> None:
        # kombu skips the table file when its in-process state (shared by every connection of
        # the process) already has the binding, so a publisher could route by a table that
        # another thread had not written yet, and drop the message. Write it every time.
        super().queue_bind(queue, exchange, routing_key, arguments, **kwargs)
        exchange = exchange or "amq.direct"
        meta = self.typeof(exchange).prepare_bind(queue, exchange, routing_key, arguments)
        self._queue_bind(exchange, *meta)

    def _queue_bind(self, exchange: Any, routing_key: Any, pattern: Any, queue: Any) -> None:
        table = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with open(table.with_name(f"{table.name}.lock"), "a") as guard:
            filesystem.lock(guard, filesystem.LOCK_EX)  # released when the file closes
            queues = self.get_table(exchange)
            if entry in queues:
                return
            queues.insert(0, entry)
            partial = table.with_name(f"{table.name}.{uuid.uuid4()}.part")
            partial.write_bytes(dumps(queues).encode())
            os.replace(partial, table)


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    TRANSPORT_ALIASES[ALIAS] = "worker.broker_fs:Transport"
