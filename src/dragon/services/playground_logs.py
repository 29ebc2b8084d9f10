"""Failing CI logs for the playground's presets: what a runner prints, trimmed to its tail."""

from __future__ import annotations

LINT_ON_A_PULL_REQUEST = """\
Run ruff format --check .
Would reformat: src/shop/cart.py
Would reformat: src/shop/checkout.py
2 files would be reformatted, 41 files already formatted
Error: Process completed with exit code 1.
"""

NETWORK_DURING_CHECKOUT = """\
Run actions/checkout@v4
Syncing repository: acme/shop
fatal: unable to access 'https://github.com/acme/shop/': Could not resolve host: github.com
The process '/usr/bin/git' failed with exit code 128
Waiting 14 seconds before trying again
fatal: unable to access 'https://github.com/acme/shop/': Connection reset by peer
Error: The process '/usr/bin/git' failed with exit code 128
"""

TEST_FAILURE_ON_MAIN = """\
============================= test session starts ==============================
collected 214 items

tests/test_cart.py ....F...
=================================== FAILURES ===================================
____________________________ test_total_is_rounded _____________________________
E       assert Decimal('10.01') == Decimal('10.00')
FAILED tests/test_cart.py::test_total_is_rounded - assert Decimal('10.01') == Decimal('10.00')
========================= 1 failed, 213 passed in 12.31s =========================
Error: Process completed with exit code 1.
"""

PUSH_WITHOUT_PERMISSION = """\
Run ./scripts/publish-docs.sh
remote: Permission to acme/shop.git denied to github-actions[bot].
fatal: unable to access 'https://github.com/acme/shop/': The requested URL returned error: 403
Error: Process completed with exit code 128.
"""
