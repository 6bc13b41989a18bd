"""Which SDOH domain a taxonomy term means: the default rows of the editable `TaxonomySdohMap`
table, and the lookup the HSDS import uses to fill a service's categories from its terms.

The defaults cover common 211 LA / AIRS codes (matched on the code, and on any code below it:
BD-1800.2000 also matches BD-1800.2000-620) and Open Eligibility terms (matched on the name,
ignoring case). Network admins may edit the table; seeding only fills an empty one."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from referrals.directory.models import TaxonomySdohMap
from referrals.terminology import SDOH_CATEGORIES

AIRS = "AIRS/211 LA"
OPEN_ELIGIBILITY = "Open Eligibility"

# (taxonomy, code, name, SDOH category)
DEFAULT_ROWS: tuple[tuple[str, str | None, str | None, str], ...] = (
    (AIRS, "BD-1800", "Emergency Food", "food-insecurity"),
    (AIRS, "BD-1800.2000", "Food Pantries", "food-insecurity"),
    (AIRS, "BD-1800.1900", "Food Lines", "food-insecurity"),
    (AIRS, "BD-5000", "Meals", "food-insecurity"),
    (AIRS, "NL-6000.2000", "Food Stamps/SNAP", "food-insecurity"),
    (AIRS, "BH-1800", "Housing Search and Information", "housing-instability"),
    (AIRS, "BH-3800", "Housing Expense Assistance", "housing-instability"),
    (AIRS, "BH-3800.7000", "Rent Payment Assistance", "housing-instability"),
    (AIRS, "BH-8400", "Housing Counseling", "housing-instability"),
    (AIRS, "BH-1800.8500", "Shelter Locator", "homelessness"),
    (AIRS, "BH-1800.8500-150", "Homeless Shelter", "homelessness"),
    (AIRS, "BH-0500", "Home Rehabilitation Programs", "inadequate-housing"),
    (AIRS, "BT-4500", "Transportation", "transportation-insecurity"),
    (AIRS, "BT-4500.6500", "Medical Appointments Transportation", "transportation-insecurity"),
    (AIRS, "BV-8900", "Utility Assistance", "utility-insecurity"),
    (AIRS, "BV-8900.9300", "Utility Service Payment Assistance", "utility-insecurity"),
    (AIRS, "BH-3800.3000", "Emergency Utility Assistance", "utility-insecurity"),
    (AIRS, "NL-1000", "Financial Assistance", "financial-insecurity"),
    (AIRS, "ND-6500", "Employment Preparation", "employment-status"),
    (AIRS, "ND-1500", "Job Finding Assistance", "employment-status"),
    (AIRS, "HH-0500", "Adult Basic Education", "educational-attainment"),
    (AIRS, "RP-1400", "Family Counseling", "stress"),
    (AIRS, "RR-4500", "Mental Health Evaluation", "stress"),
    (AIRS, "FN-1500.1900", "Domestic Violence Shelters", "intimate-partner-violence"),
    (AIRS, "PH-2900.1700", "Domestic Violence Hotlines", "intimate-partner-violence"),
    (AIRS, "FN-1500.1900-200", "Elder Abuse Prevention", "elder-abuse"),
    (
        AIRS,
        "NS-8000",
        "Health Insurance Information/Counseling",
        "health-insurance-coverage-status",
    ),
    (AIRS, "TH-2600", "Veteran Benefits Assistance", "veteran-status"),
    (AIRS, "LH-2700", "Computer Classes", "digital-literacy"),
    (OPEN_ELIGIBILITY, None, "Food", "food-insecurity"),
    (OPEN_ELIGIBILITY, None, "Emergency Food", "food-insecurity"),
    (OPEN_ELIGIBILITY, None, "Food Pantry", "food-insecurity"),
    (OPEN_ELIGIBILITY, None, "Nutrition Education", "food-insecurity"),
    (OPEN_ELIGIBILITY, None, "Housing", "housing-instability"),
    (OPEN_ELIGIBILITY, None, "Help Pay for Housing", "housing-instability"),
    (OPEN_ELIGIBILITY, None, "Shelter", "homelessness"),
    (OPEN_ELIGIBILITY, None, "Emergency Shelter", "homelessness"),
    (OPEN_ELIGIBILITY, None, "Home Repair & Maintenance", "inadequate-housing"),
    (OPEN_ELIGIBILITY, None, "Transit", "transportation-insecurity"),
    (OPEN_ELIGIBILITY, None, "Transportation", "transportation-insecurity"),
    (OPEN_ELIGIBILITY, None, "Utilities", "utility-insecurity"),
    (OPEN_ELIGIBILITY, None, "Help Pay for Utilities", "utility-insecurity"),
    (OPEN_ELIGIBILITY, None, "Money", "financial-insecurity"),
    (OPEN_ELIGIBILITY, None, "Financial Assistance", "financial-insecurity"),
    (OPEN_ELIGIBILITY, None, "Goods", "material-hardship"),
    (OPEN_ELIGIBILITY, None, "Clothing", "material-hardship"),
    (OPEN_ELIGIBILITY, None, "Education", "educational-attainment"),
    (OPEN_ELIGIBILITY, None, "Work", "employment-status"),
    (OPEN_ELIGIBILITY, None, "Health Insurance", "health-insurance-coverage-status"),
    (OPEN_ELIGIBILITY, None, "Medical Care", "medical-cost-burden"),
    (OPEN_ELIGIBILITY, None, "Counseling", "stress"),
    (OPEN_ELIGIBILITY, None, "Support Network", "social-connection"),
    (OPEN_ELIGIBILITY, None, "Domestic Violence", "intimate-partner-violence"),
    (OPEN_ELIGIBILITY, None, "Legal", "sdoh-category-unspecified"),
    (OPEN_ELIGIBILITY, None, "Computer Class", "digital-literacy"),
    (OPEN_ELIGIBILITY, None, "Internet", "digital-access"),
    (OPEN_ELIGIBILITY, None, "Translation & Interpretation", "language-access"),
    (OPEN_ELIGIBILITY, None, "Veterans", "veteran-status"),
)

assert all(category in SDOH_CATEGORIES for *_, category in DEFAULT_ROWS)


def seed_taxonomy_map(session: Session) -> int:
    """Fill the mapping table with the defaults when it is empty; return the rows added."""
    if session.scalar(select(func.count(TaxonomySdohMap.id))):
        return 0
    session.add_all(
        TaxonomySdohMap(taxonomy=taxonomy, term_code=code, term_name=name, sdoh_category=category)
        for taxonomy, code, name, category in DEFAULT_ROWS
    )
    session.flush()
    return len(DEFAULT_ROWS)


class SdohMapper:
    """The mapping table read once: SDOH categories for taxonomy terms."""

    def __init__(self, rows: Iterable[TaxonomySdohMap]) -> None:
        self.by_code: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        for row in rows:
            if row.term_code:
                self.by_code[row.term_code.strip().upper()] = row.sdoh_category
            if row.term_name:
                self.by_name.setdefault(row.term_name.strip().casefold(), row.sdoh_category)

    @classmethod
    def load(cls, session: Session) -> SdohMapper:
        return cls(session.scalars(select(TaxonomySdohMap)))

    def category(self, code: str | None, name: str | None) -> str | None:
        """The SDOH category of a term: by its code (or the nearest mapped code above it in
        the AIRS hierarchy), else by its name."""
        if code:
            key = code.strip().upper()
            while key:
                if key in self.by_code:
                    return self.by_code[key]
                cut = max(key.rfind("-", 3), key.rfind("."))
                key = key[:cut] if cut > 2 else ""
        if name:
            return self.by_name.get(name.strip().casefold())
        return None

    def categories(self, terms: Iterable[tuple[str | None, str | None]]) -> list[str]:
        """The distinct categories of some (code, name) terms, in SDOH list order."""
        found = {self.category(code, name) for code, name in terms} - {None}
        return [c for c in SDOH_CATEGORIES if c in found]
