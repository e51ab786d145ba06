"""Price sheet and exact cost arithmetic."""

from turnout.pricing.cost import FREE, Price, usd
from turnout.pricing.sheet import SheetEntry, bundled_sheet, lookup

__all__ = ["FREE", "Price", "SheetEntry", "bundled_sheet", "lookup", "usd"]
