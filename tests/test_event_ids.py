"""Event ids (``core.event.new_id``): a hold, a done marker and a ledger entry are keyed by them, so two
requests must never share one, within a process, across processes, or across a fork."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from core.event import new_id

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert all(HEX32.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_another_process_draws_another_prefix() -> None:
    code = "from core.event import new_id; print(new_id())"
    theirs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
              for _ in range(2)}
    mine = new_id()
    assert len({i[:16] for i in theirs} | {mine[:16]}) == 3


def test_a_forked_child_does_not_count_on_from_its_parent() -> None:
    before = new_id()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out
        os.write(w, new_id().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(pid, 0)
    after = new_id()
    assert HEX32.fullmatch(child)
    assert child[:16] != before[:16] == after[:16]
    assert int(after[16:], 16) == int(before[16:], 16) + 1  # the parent's count goes on
