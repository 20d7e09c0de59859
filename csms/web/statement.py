"""A household's monthly statement as a PDF: the month's uses with net, VAT and gross, the
wallet's movements (top-ups, vouchers, corrections), and the totals. Gathered from the same
services as the pages (billing.history, the wallet's ledger), drawn with fpdf2 (no network, no
fonts to fetch: the PDF core fonts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from fpdf import FPDF
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.history import account_uses, cost_of
from billing.models import PaidUse
from csms.inventory.models import Site
from csms.web.i18n import Translate, format_money, format_number, format_time
from wallet.models import Account
from wallet.service import ledger_page
from wallet.views import LedgerLine


@dataclass(frozen=True, slots=True)
class Statement:
    site: Site
    account: Account
    month: str  # YYYY-MM
    uses: list[PaidUse]
    movements: list[LedgerLine]

    @property
    def uses_gross(self) -> Decimal:
        return sum((cost_of(u) for u in self.uses), Decimal(0))

    @property
    def uses_net(self) -> Decimal:
        return sum((u.net or Decimal(0) for u in self.uses), Decimal(0))

    @property
    def paid_in(self) -> Decimal:
        return sum((m.amount for m in self.movements if m.amount > 0), Decimal(0))


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in the site's zone (ValueError if bad)."""
    year, number = (int(part) for part in month.split("-"))
    if not 1 <= number <= 12 or not 2000 <= year <= 2100:
        raise ValueError(f"not a month: {month!r}")
    zone = ZoneInfo(timezone)
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=zone)
    return start, end


async def gather_statement(db: AsyncSession, site: Site, account: Account, month: str
                           ) -> Statement:
    start, end = month_bounds(month, site.timezone)
    uses = [u for u in await account_uses(db, account.id, since=start, limit=5000)
            if u.started_at is not None and u.started_at < end]
    movements: list[LedgerLine] = []
    before: int | None = None
    while True:
        page = await ledger_page(db, account.id, limit=500, before=before)
        movements += [line for line in page.lines if start <= line.at < end]
        if page.next_before is None or (page.lines and page.lines[-1].at < start):
            break
        before = page.next_before
    return Statement(site, account, month, list(reversed(uses)), list(reversed(movements)))


def _text(value: str) -> str:
    """What the PDF core fonts (Latin-1) can show."""
    return (value.replace("€", "EUR").replace("\u202f", " ").replace("\u00a0", " ")
            .replace("−", "-").replace("–", "-").replace("’", "'")
            .encode("latin-1", "replace").decode("latin-1"))


def statement_pdf(statement: Statement, t: Translate, lang: str) -> bytes:
    site, account = statement.site, statement.account
    currency = site.currency

    def money(value: Decimal | None) -> str:
        return _text(format_money(value, currency, lang))

    pdf = FPDF(format="A4")
    pdf.set_title(_text(t("statement.title", month=statement.month)))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, _text(t("statement.title", month=statement.month)), new_x="LMARGIN",
             new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for heading in (site.name, f"{account.name} ({account.ref})", account.unit or ""):
        if heading:
            pdf.cell(0, 5, _text(heading), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, _text(t("statement.uses")), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    widths = (34, 52, 22, 26, 24, 28)
    header = (t("common.date"), t("resident.use.what"), "kWh", t("common.net"),
              t("common.vat"), t("common.gross"))
    for width, text in zip(widths, header, strict=True):
        pdf.cell(width, 6, _text(text), border="B")
    pdf.ln()
    for use in statement.uses:
        row = (format_time(use.started_at, site.timezone, lang),
               f"{t('resident.kind.' + use.kind)} {use.device_id}",
               format_number(Decimal(use.energy_wh) / 1000, lang, 3), money(use.net),
               money(use.vat),
               money(cost_of(use)))
        for width, text in zip(widths, row, strict=True):
            pdf.cell(width, 5, _text(text)[:40])
        pdf.ln()
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(sum(widths[:3]), 6, _text(t("common.total")))
    pdf.cell(widths[3], 6, money(statement.uses_net))
    pdf.cell(widths[4], 6, "")
    pdf.cell(widths[5], 6, money(statement.uses_gross), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, _text(t("statement.movements")), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    for movement in statement.movements:
        pdf.cell(34, 5, _text(format_time(movement.at, site.timezone, lang)))
        pdf.cell(110, 5, _text(f"{movement.kind} {movement.description or ''}")[:70])
        pdf.cell(30, 5, money(movement.amount), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(0, 6, _text(t("statement.paid_in", amount=money(statement.paid_in))),
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    pdf.cell(0, 5, _text(t("statement.net_note")), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
