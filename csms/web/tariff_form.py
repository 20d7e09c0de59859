"""The owner's tariff editor form <-> a tariff document: the structured fields (tiers, steps,
grace, free allowances, flat price, caps, VAT) over the document as stored, and the contract's
problem paths (`components[0].tiers[1].price`) back to the field that shows them. Pure."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import yaml

_SUFFIX = {"energy": "wh", "time": "s", "idle": "s"}
_PATH = re.compile(r"^components\[(\d+)\]\.(?:tiers\[(\d+)\]\.)?(\w+)")


class FormProblem(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def field_name(problem_path: str) -> str:
    """The form field a contract problem belongs to ("document" when no field shows it)."""
    match = _PATH.match(problem_path)
    if match is None:
        top = problem_path.split(":", 1)[0].split(".", 1)[0]
        return top if top in ("name", "vat_percent", "min_price", "max_price") else "document"
    component, tier, key = match.groups()
    if tier is not None:
        return f"c{component}_t{tier}_{'from' if key.startswith('from_') else key}"
    for base in ("step", "grace", "free"):
        if key.startswith(base + "_"):
            return f"c{component}_{base}"
    return f"c{component}_{key}" if key == "price" else "document"


def document_from_form(form: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """The stored document with the form's edits on top. The advanced text (YAML) replaces the
    stored document first when it was changed."""
    base: Any = copy.deepcopy(dict(stored))
    text = str(form.get("document") or "").strip()
    if text:
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise FormProblem("document", f"not YAML: {error}") from None
        if not isinstance(parsed, dict):
            raise FormProblem("document", "must be a mapping (the tariff document)")
        if parsed != dict(stored):
            return parsed  # the advanced edit wins; its fields were shown from `stored`
    for key in ("name", "vat_percent", "min_price", "max_price"):
        if key in form:
            value = str(form[key]).strip()
            if value:
                base[key] = value
            else:
                base.pop(key, None)
    for i, component in enumerate(base.get("components") or []):
        suffix = _SUFFIX.get(str(component.get("dimension")))
        for j, tier in enumerate(component.get("tiers") or []):
            new_price = form.get(f"c{i}_t{j}_price")
            if new_price is not None:
                tier["price"] = str(new_price).strip()
            new_start = form.get(f"c{i}_t{j}_from")
            if new_start is not None and suffix is not None:
                tier[f"from_{suffix}"] = _whole(str(new_start), f"c{i}_t{j}_from")
        if suffix is not None:
            for base_key in ("step", "grace", "free"):
                given = form.get(f"c{i}_{base_key}")
                if given is None:
                    continue
                text_value = str(given).strip()
                if text_value:
                    component[f"{base_key}_{suffix}"] = _whole(text_value, f"c{i}_{base_key}")
                else:
                    component.pop(f"{base_key}_{suffix}", None)
        if component.get("dimension") == "flat" and form.get(f"c{i}_price") is not None:
            component["price"] = str(form[f"c{i}_price"]).strip()
    return base


def _whole(text: str, field: str) -> int:
    if not re.fullmatch(r"\d{1,9}", text.strip()):
        raise FormProblem(field, "a whole number, 0 or more")
    return int(text)


def document_text(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)
