"""Pipes messages from a local process are parsed whole, however the process's writes split them."""

from __future__ import annotations

import json
import threading
import time

from algo_platform.resources.pipes_messages import whole_lines


def test_a_message_written_in_pieces_is_read_once_whole(tmp_path):
    path = tmp_path / "messages"
    path.write_text("")
    message = json.dumps({"method": "report_asset_check", "params": {"examples": "x" * 50_000}}) + "\n"
    stopped = threading.Event()

    def write_in_pieces() -> None:  # as a buffered text stream writes a long line: several writes
        with open(path, "a", encoding="utf-8") as stream:
            for start in range(0, len(message), 8192):
                stream.write(message[start : start + 8192])
                stream.flush()
                time.sleep(0.02)
            stream.write('{"method": "closed"}')  # the last line, its newline never written
        stopped.set()

    writer = threading.Thread(target=write_in_pieces)
    writer.start()
    lines = list(whole_lines(str(path), stopped.is_set, poll_seconds=0.001))
    writer.join()
    assert [json.loads(line)["method"] for line in lines] == ["report_asset_check", "closed"]
    assert json.loads(lines[0])["params"]["examples"] == "x" * 50_000
