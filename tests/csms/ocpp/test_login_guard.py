"""The pause after wrong station passwords, decided without I/O."""

from __future__ import annotations

from csms.ocpp.login_guard import LoginGuard


def test_locks_after_the_limit_within_the_window() -> None:
    guard = LoginGuard(max_failures=3, window_s=60, lockout_s=30)
    assert guard.failed("WB-1", 0) is False
    assert guard.failed("WB-1", 10) is False
    assert guard.retry_after("WB-1", 11) is None
    assert guard.failed("WB-1", 20) is True
    assert guard.retry_after("WB-1", 25) == 25
    assert guard.retry_after("WB-2", 25) is None
    assert guard.retry_after("WB-1", 50) is None


def test_failures_outside_the_window_do_not_count() -> None:
    guard = LoginGuard(max_failures=3, window_s=60, lockout_s=30)
    guard.failed("WB-1", 0)
    guard.failed("WB-1", 30)
    assert guard.failed("WB-1", 61) is False
    assert guard.failed("WB-1", 62) is True


def test_a_right_password_clears_the_count() -> None:
    guard = LoginGuard(max_failures=2, window_s=60, lockout_s=30)
    guard.failed("WB-1", 0)
    guard.succeeded("WB-1")
    assert guard.failed("WB-1", 1) is False


def test_memory_is_bounded() -> None:
    from csms.ocpp import login_guard

    guard = LoginGuard(max_failures=5)
    for number in range(login_guard.MAX_TRACKED + 50):
        guard.failed(f"WB-{number}", 0)
    assert len(guard._failures) == login_guard.MAX_TRACKED
