"""Whose turn it is to send a CALL (OCPP-J: one of ours outstanding at a time). `take_now` must
be certain, since a handler that waited for the turn would wait for an answer only it can let
the reader read; and a waiter that gives up must neither keep the turn nor lose it."""

from __future__ import annotations

import asyncio
import contextlib

from csms.ocpp.connection import _CallTurn


async def test_first_come_and_take_now_never_jumps_the_queue() -> None:
    turn = _CallTurn()
    assert turn.take_now()
    order: list[str] = []

    async def waiter(name: str) -> None:
        await turn.take()
        order.append(name)

    first = asyncio.create_task(waiter("first"))
    second = asyncio.create_task(waiter("second"))
    await asyncio.sleep(0)
    assert not turn.take_now()
    turn.give()
    # Handed to `first`, which has not run yet: still nobody else's.
    assert not turn.take_now()
    await first
    assert order == ["first"]
    turn.give()
    await second
    assert order == ["first", "second"]
    assert not turn.take_now()
    turn.give()
    assert turn.take_now()


async def test_a_waiter_that_gives_up_is_skipped_or_passes_the_turn_on() -> None:
    turn = _CallTurn()
    assert turn.take_now()
    quitter = asyncio.create_task(turn.take())
    await asyncio.sleep(0)
    quitter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await quitter
    turn.give()
    assert turn.take_now()  # nobody waits any more: free

    late = asyncio.create_task(turn.take())
    following = asyncio.create_task(turn.take())
    await asyncio.sleep(0)
    turn.give()  # to `late` ...
    late.cancel()  # ... which gives up before it ran: the turn goes on
    with contextlib.suppress(asyncio.CancelledError):
        await late
    await following
    assert not turn.take_now()
    turn.give()
    assert turn.take_now()
