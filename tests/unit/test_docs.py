"""The docs keep up with the code: every setting and every error code is documented."""

from __future__ import annotations

import re
from pathlib import Path

from dragon.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        f"DRAGON_{name.upper()}"
        for name in Settings.model_fields
        if f"`DRAGON_{name.upper()}`" not in readme
    ]
    assert missing == []


def test_every_error_code_raised_in_the_source_is_in_docs_errors() -> None:
    errors_doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "src" / "dragon").rglob("*.py")
    )
    codes = set(re.findall(r'code="([a-z_]+)"', source)) | set(
        re.findall(r'default_code = "([a-z_]+)"', source)
    )
    # Codes the API layer passes positionally to problem().
    codes |= {"route_not_found", "method_not_allowed", "body_too_large", "internal_error"}
    codes |= {"not_ready", "json_invalid", "validation_failed"}
    assert len(codes) > 20
    undocumented = sorted(c for c in codes if f"`{c}`" not in errors_doc)
    assert undocumented == []
