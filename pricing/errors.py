"""The package's one exception type, carrying every problem found, each with its path."""

from __future__ import annotations

from collections.abc import Iterable


class TariffError(ValueError):
    """A tariff or usage document (or a live sample) is invalid.

    `problems` lists every problem found, each as `"<path>: <message>"` with the path relative to
    the document (`components[1].tiers[0].price: must not be negative`). Validation never stops at
    the first problem, so a site owner fixes a document in one round.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


class Problems:
    """Collects problems while a document is walked; raises them together at the end."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def raise_if_any(self) -> None:
        if self.items:
            raise TariffError(self.items)
