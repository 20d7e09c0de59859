"""A card on nfcpy's `udp` driver, for enrolment without hardware (tests, demos).

The udp driver's Type A listener answers SENS_REQ with our ATQA, runs the anticollision and
select cascade with our UID (inserting the cascade tags and BCCs itself) and answers select with
our SAK, so any 4- or 7-byte UID with any ATQA and SAK can be presented. Not 10-byte UIDs: the
driver (nfcpy 1.0.4) matches the cascade level 3 SELECT against the level 2 command code, so a
reader never completes the third level.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

from rfid.uid import Uid


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmulatedCard:
    """`with EmulatedCard(uid, atqa=0x0004, sak=0x08) as card:` read it at `card.device`."""

    def __init__(
        self, uid: Uid, *, atqa: int, sak: int, port: int | None = None, timeout_s: float = 10.0
    ) -> None:
        if len(uid.data) == 10:
            raise ValueError("nfcpy's udp driver cannot complete a 10-byte UID's third cascade")
        self.uid, self.atqa, self.sak = uid, atqa, sak
        self.port = port or free_udp_port()
        self.device = f"udp:127.0.0.1:{self.port}"
        self.timeout_s = timeout_s
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def _listen(self) -> None:
        import nfc
        import nfc.clf

        try:
            frontend = nfc.ContactlessFrontend(self.device)
            target = nfc.clf.LocalTarget(
                "106A",
                sens_res=bytearray(self.atqa.to_bytes(2, "little")),
                sdd_res=bytearray(self.uid.data),
                sel_res=bytearray([self.sak]),
            )
            self._ready.set()
            try:
                frontend.listen(target, self.timeout_s)
            finally:
                frontend.close()
        except BaseException as error:  # reported to the test through `error`
            self.error = error
            self._ready.set()

    def __enter__(self) -> EmulatedCard:
        self._thread.start()
        self._ready.wait(5)
        # listen() binds its socket right after we are told it is ready; a reader polling before
        # that would lose its first SENS_REQ and wait a second for the answer.
        time.sleep(0.05)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

    def remove(self) -> None:
        """Take the card away: a HLTA ends the listener at once instead of at its timeout."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            deadline = time.monotonic() + self.timeout_s + 1
            while self._thread.is_alive() and time.monotonic() < deadline:
                sender.sendto(b"106A 5000", ("127.0.0.1", self.port))
                self._thread.join(0.1)

    def __repr__(self) -> str:
        attributes: dict[str, Any] = {"uid": str(self.uid), "atqa": f"{self.atqa:04X}",
                                      "sak": f"{self.sak:02X}", "device": self.device}
        return f"EmulatedCard({attributes})"
