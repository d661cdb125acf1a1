"""The embedded broker publishes atomically: a consumer never sees a half-written message."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from kombu.connection import Connection

from worker import broker_fs


def test_concurrent_publish_and_consume_never_reads_a_partial_message(tmp_path: Path) -> None:
    broker_fs.register()
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "store_processed": False,
        "control_folder": str(tmp_path / "control"),
    }
    sent = 300
    received: list[int] = []
    errors: list[BaseException] = []

    def consume() -> None:
        with Connection("tbatchfs://", transport_options=options) as conn:
            queue = conn.SimpleQueue("q")
            try:
                while len(received) < sent:
                    message = queue.get(timeout=10)
                    message.ack()  # as Celery does: an unacked message is restored on close
                    received.append(message.payload["n"])
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
            queue.close()

    consumer = threading.Thread(target=consume)
    consumer.start()
    with Connection("tbatchfs://", transport_options=options) as conn:
        queue = conn.SimpleQueue("q")
        for n in range(sent):
            queue.put({"n": n, "padding": "x" * 20000})
        queue.close()
    consumer.join(30)
    assert errors == [] and sorted(received) == list(range(sent))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]
    assert not Path("control").exists()  # nothing written outside tmp_path
