"""Kombu's filesystem transport, with atomic publishing (the embedded mode's broker).

Stock kombu creates the message file, then locks and writes it; a consumer listing the folder in
between moves and reads an empty file and the Celery worker dies on the JSON error (seen in
`tbatch demo`). Here a message is written under a name the consumer ignores and renamed into
place, which is atomic on one filesystem.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

ALIAS = "tbatchfs"


class Channel(filesystem.Channel):  # type: ignore[misc]
    # kombu types _put twice (virtual base vs filesystem) with different names; match the latter.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.part"  # "<queue>.msg.part" never matches the consumer's filter
        with open(partial, "wb") as fh:
            fh.write(dumps(payload).encode())  # type: ignore[no-untyped-call]  # kombu untyped
        os.replace(partial, final)


class Transport(filesystem.Transport):  # type: ignore[misc]
    Channel = Channel


def register() -> None:
    TRANSPORT_ALIASES[ALIAS] = "worker.broker_fs:Transport"
