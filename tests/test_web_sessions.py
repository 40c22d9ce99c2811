"""Console sessions: ids, expiry, capacity, CSRF comparison (no server needed)."""

from __future__ import annotations

import time

from filetier.interfaces.web.sessions import Sessions, same_secret


def test_a_session_is_found_by_its_id_only_and_ends_on_close() -> None:
    sessions = Sessions()
    sid, session = sessions.open("token-of-alice-0000")
    other, _ = sessions.open("token-of-alice-0000")
    assert sid != other and len(sid) >= 40
    assert sessions.get(sid) is session
    assert sessions.get(sid[:-1]) is None
    assert sessions.get(None) is None
    sessions.close(sid)
    assert sessions.get(sid) is None
    assert "token-of-alice" not in repr(session)  # never in a log line


def test_idle_and_old_sessions_end() -> None:
    idle = Sessions(idle_seconds=0.05)
    sid, _ = idle.open("t" * 20)
    time.sleep(0.1)
    assert idle.get(sid) is None
    old = Sessions(lifetime_seconds=0.15)
    sid, _ = old.open("t" * 20)
    for _ in range(4):  # kept busy, still not past its lifetime
        time.sleep(0.05)
        if old.get(sid) is None:
            break
    assert old.get(sid) is None


def test_capacity_drops_the_least_recently_used() -> None:
    sessions = Sessions(capacity=2)
    first, _ = sessions.open("a" * 20)
    second, _ = sessions.open("b" * 20)
    assert sessions.get(first) is not None  # first is now the most recent
    third, _ = sessions.open("c" * 20)
    assert len(sessions) == 2
    assert sessions.get(second) is None
    assert sessions.get(first) is not None and sessions.get(third) is not None


def test_signing_in_again_and_again_drops_only_that_tokens_own_sessions() -> None:
    """A tenant who signs in 10,000 times with one token must not sign everyone else out:
    past its own cap, its own least recently used sessions go."""
    sessions = Sessions(capacity=100, per_token=3)
    operator, _ = sessions.open("operator-token-0000")
    tenant = [sessions.open("tenant-token-00000")[0] for _ in range(3)]
    assert sessions.get(tenant[0]) is not None  # now its most recently used
    for _ in range(500):
        sessions.open("tenant-token-00000")
    assert sessions.get(operator) is not None
    assert len(sessions) == 1 + 3
    assert all(sessions.get(sid) is None for sid in tenant)


def test_csrf_checks_need_the_exact_token() -> None:
    _, session = Sessions().open("t" * 20)
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(None)
    assert not session.csrf_matches("")
    assert not session.csrf_matches(session.csrf[:-1])
    assert same_secret("abc", "abc")
    assert not same_secret(None, None)
    assert not same_secret("", "")
    assert not same_secret("abc", "abd")
