"""Usage: the meter samples of one session, validated, with cumulative series for rating."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pricing.errors import Problems, TariffError
from pricing.tariff import parse_instant, whole_number
from pricing.timeofuse import instant_us


@dataclass(frozen=True, slots=True)
class Sample:
    """One meter reading: `energy_wh` is the register (not a delta); `charging` describes the
    span from the previous sample to this one (False counts that span as idle time)."""

    at: datetime
    energy_wh: int
    charging: bool = True


def check_sample(sample: object, index: int, previous: Sample | None, problems: Problems
                 ) -> bool:
    """Problems of one sample and of its order against the previous one."""
    path = f"samples[{index}]"
    if not isinstance(sample, Sample):
        problems.add(path, f"must be a Sample, not {type(sample).__name__}")
        return False
    ok = True
    if not isinstance(sample.at, datetime) or sample.at.utcoffset() is None:
        problems.add(f"{path}.at", "must be a datetime with a UTC offset")
        ok = False
    if whole_number(sample.energy_wh, f"{path}.energy_wh", problems) is None:
        ok = False
    if not isinstance(sample.charging, bool):
        problems.add(f"{path}.charging", "must be true or false")
        ok = False
    if ok and previous is not None:
        # Aware datetimes sharing a tzinfo compare by wall time, which runs backwards on a DST
        # night; only the instants decide the order.
        if instant_us(sample.at) <= instant_us(previous.at):
            problems.add(f"{path}.at", f"{sample.at.isoformat()} is not after "
                                       f"samples[{index - 1}].at {previous.at.isoformat()} "
                                       "(timestamps must strictly increase)")
            ok = False
        if sample.energy_wh < previous.energy_wh:
            problems.add(f"{path}.energy_wh", f"decreases from {previous.energy_wh} to "
                                              f"{sample.energy_wh} (the register never decreases)")
            ok = False
    return ok


@dataclass(frozen=True, slots=True)
class Usage:
    """A session's samples. The session runs from the first sample to the last."""

    samples: tuple[Sample, ...]
    # Series the engine interpolates on: instants (us), register (Wh), cumulative idle (us).
    times: tuple[int, ...] = field(init=False, repr=False, compare=False)
    energy: tuple[int, ...] = field(init=False, repr=False, compare=False)
    idle: tuple[int, ...] = field(init=False, repr=False, compare=False)
    charging: tuple[bool, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        samples = tuple(self.samples)
        problems = Problems()
        if not samples:
            problems.add("samples", "must hold at least one sample")
        previous: Sample | None = None
        for index, sample in enumerate(samples):
            if check_sample(sample, index, previous, problems):
                previous = sample
        problems.raise_if_any()
        times = tuple(instant_us(sample.at) for sample in samples)
        idle = [0]
        for index in range(1, len(samples)):
            span = 0 if samples[index].charging else times[index] - times[index - 1]
            idle.append(idle[-1] + span)
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "energy", tuple(sample.energy_wh for sample in samples))
        object.__setattr__(self, "idle", tuple(idle))
        object.__setattr__(self, "charging", tuple(sample.charging for sample in samples))

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> Usage:
        return cls(tuple(samples))


def load_usage(doc: Mapping[str, Any]) -> Usage:
    """Validate a usage document (`{"samples": [...]}`); raise `TariffError` with every problem."""
    problems = Problems()
    if not isinstance(doc, Mapping):
        raise TariffError([f"a usage document must be a mapping, not {type(doc).__name__}"])
    for key in doc:
        if key != "samples":
            problems.add(str(key), "unknown key")
    raw_samples = doc.get("samples")
    samples: list[Sample] = []
    if "samples" not in doc:
        problems.add("samples", "required")
    elif not isinstance(raw_samples, list) or not raw_samples:
        problems.add("samples", "must be a non-empty list")
    else:
        previous: Sample | None = None
        for index, raw in enumerate(raw_samples):
            path = f"samples[{index}]"
            if not isinstance(raw, Mapping):
                problems.add(path, "must be a mapping with at, energy_wh and charging")
                continue
            for key in raw:
                if key not in ("at", "energy_wh", "charging"):
                    problems.add(f"{path}.{key}", "unknown key")
            at = energy = None
            if "at" not in raw:
                problems.add(f"{path}.at", "required")
            else:
                at = parse_instant(raw["at"], f"{path}.at", problems)
            if "energy_wh" not in raw:
                problems.add(f"{path}.energy_wh", "required")
            else:
                energy = whole_number(raw["energy_wh"], f"{path}.energy_wh", problems)
            charging = raw.get("charging", True)
            if not isinstance(charging, bool):
                problems.add(f"{path}.charging", f"must be true or false, not {charging!r}")
                continue
            if at is None or energy is None:
                continue
            sample = Sample(at, energy, charging)
            if check_sample(sample, index, previous, problems):
                samples.append(sample)
                previous = sample
    problems.raise_if_any()
    return Usage(tuple(samples))
