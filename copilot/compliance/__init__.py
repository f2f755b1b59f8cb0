"""Pre-send compliance: flags illegal ad claims, off-platform moves, personal data and sensitive content.

    checker = ComplianceChecker(packs=("general", "mother_baby"))
    result = checker.check("这款奶粉效果最好，加我薇信")
    result.risk, [(f.category, f.span) for f in result.flags]

Rules are YAML data (`packs/`), reloadable at run time; see `packs.py` for the format and
`eval/datasets/COMPLIANCE_GUIDE.md` for what each category means. Per-tenant settings (`tenants.py`), the
sending-frequency guard (`frequency.py`) and the optional model pass (`llm_check.py`) are imported from their
modules, so a plain rule check does not pay for the database or model client; see README.md.
"""

from copilot.compliance.checker import ComplianceChecker
from copilot.compliance.normalize import Normalized, normalize
from copilot.compliance.packs import Rule, available_packs
from copilot.compliance.pii import MaskedText, PiiMatch, find_pii, mask_pii
from copilot.compliance.result import CATEGORIES, ComplianceResult, Flag, Risk, Severity, combine

__all__ = [
    "CATEGORIES",
    "ComplianceChecker",
    "ComplianceResult",
    "Flag",
    "MaskedText",
    "Normalized",
    "PiiMatch",
    "Risk",
    "Rule",
    "Severity",
    "available_packs",
    "combine",
    "find_pii",
    "mask_pii",
    "normalize",
]
