"""Pricing: tariffs and rating, pure (no I/O, no clock), Decimal money, integer Wh and seconds.

Implements `shared/contracts/tariff.md`; the extensions (per-day fee, demand price, debt
recovery) are described in `pricing/README.md`.

    tariff = load_tariff(doc, site_timezone="Europe/Vienna", site_country="AT")
    bill = rate(tariff, load_usage(usage_doc))          # final bill
    live = LiveRater(tariff); live.add(Sample(at, wh))  # running cost, equal to rate() so far
"""

from pricing.bill import Bill, Line, bill_to_json
from pricing.curve import CurvePoint, cost_curve
from pricing.errors import TariffError
from pricing.explain import explain
from pricing.model import Tariff
from pricing.rating import LiveRater, rate
from pricing.tariff import load_tariff
from pricing.usage import Sample, Usage, load_usage

__all__ = [
    "Bill",
    "CurvePoint",
    "Line",
    "LiveRater",
    "Sample",
    "Tariff",
    "TariffError",
    "Usage",
    "bill_to_json",
    "cost_curve",
    "explain",
    "load_tariff",
    "load_usage",
    "rate",
]
