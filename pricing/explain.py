"""A bill as a plain-text table a resident can check by hand."""

from __future__ import annotations

from pricing.bill import Bill


def explain(bill: Bill) -> str:
    header = ("dimension", "component", "window", "tier", "quantity", "unit price", "net", "note")
    rows: list[tuple[str, ...]] = [header]
    for line in bill.lines:
        component = "" if line.component is None else f"#{line.component}"
        if line.name:
            component = f"{component} {line.name}".strip()
        rows.append((
            line.dimension,
            component,
            line.window or "",
            "" if line.tier is None else str(line.tier),
            f"{line.quantity} {line.unit}",
            f"{line.unit_price}/{line.per}",
            str(line.net),
            line.note or "",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = {4, 5, 6}
    out = []
    for number, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in numeric and number else cell.ljust(widths[i])
                 for i, cell in enumerate(row)]
        out.append("  ".join(cells).rstrip())
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    total_width = len(out[1])
    out.append("-" * total_width)
    summary = [("subtotal", str(bill.subtotal))]
    if bill.void:
        summary.append(("void session (inside every grace)", "0"))
    if bill.adjustment:
        summary.append((bill.adjustment.replace("_", " ") + " applied", ""))
    summary += [("net", str(bill.net)), ("VAT", str(bill.vat)),
                (f"gross ({bill.currency})", str(bill.gross))]
    if bill.has_recovery:
        summary += [("debt recovery (no VAT)", str(bill.recovery)),
                    (f"total debited ({bill.currency})", str(bill.total))]
    label_width = max(len(label) for label, _ in summary)
    value_width = max(len(value) for _, value in summary)
    for label, value in summary:
        out.append(f"{label.ljust(label_width)}  {value.rjust(value_width)}".rstrip())
    return "\n".join(out) + "\n"
