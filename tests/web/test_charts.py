"""Charts are SVG drawn on the server, scaled to their data, with text for screen readers."""

from __future__ import annotations

from decimal import Decimal
from xml.etree import ElementTree

from csms.web.charts import Series, bar_chart, line_chart, nice_ceiling

NS = "{http://www.w3.org/2000/svg}"


def test_axis_tops_are_round_numbers_at_or_above_the_data() -> None:
    assert [nice_ceiling(Decimal(v)) for v in ("0", "0.7", "3", "7.3", "23", "260")] == [
        Decimal(1), Decimal("1"), Decimal(5), Decimal(10), Decimal("25"), Decimal("500")]


def test_bar_heights_follow_the_values() -> None:
    svg = ElementTree.fromstring(str(bar_chart(
        [("Mo", Decimal("2")), ("Di", Decimal("4")), ("Mi", Decimal("-1"))],
        title="Verbrauch", unit="kWh")))
    bars = svg.findall(f"{NS}rect")
    heights = [float(bar.get("height", "0")) for bar in bars]
    assert heights[1] == 2 * heights[0] and heights[2] == 0
    assert svg.find(f"{NS}title").text == "Verbrauch"  # type: ignore[union-attr]
    assert "Di: 4 kWh" in svg.find(f"{NS}desc").text  # type: ignore[union-attr,operator]


def test_a_line_chart_plots_every_series() -> None:
    svg = ElementTree.fromstring(str(line_chart(
        [Series("A", [(Decimal(0), Decimal(0)), (Decimal(60), Decimal("3.5"))]),
         Series("B", [(Decimal(0), Decimal(1)), (Decimal(60), Decimal(1))])],
        title="Kosten", x_label="min", y_label="€")))
    lines = svg.findall(f"{NS}polyline")
    assert len(lines) == 2
    first = [tuple(map(float, p.split(","))) for p in lines[0].get("points", "").split()]
    assert first[0][1] > first[1][1]  # rising cost is drawn upwards
    assert "60 → 3.5" in svg.find(f"{NS}desc").text  # type: ignore[union-attr,operator]


def test_text_in_charts_is_escaped() -> None:
    svg = str(bar_chart([("<b>", Decimal(1))], title="a & b", unit="€"))
    ElementTree.fromstring(svg)
    assert "<b>" not in svg
