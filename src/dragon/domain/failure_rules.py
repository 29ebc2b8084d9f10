"""The built-in analyzer's knowledge: which lines of a CI log point to which kind of failure.

Each rule is a regular expression with a weight. A class scores the sum of its matched rules'
weights (each rule counts once), so one strong line (`MemoryError`) outweighs a few weak ones
(`1 failed`); running out of a resource outweighs the failed test it broke; and the classification stays explainable: every point comes from a named rule
and the line it matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class FailureClass(StrEnum):
    TEST_FAILURE = "test_failure"
    COMPILE_ERROR = "compile_error"
    LINT_FORMAT = "lint_format"
    DEPENDENCY_RESOLUTION = "dependency_resolution"
    FLAKY_INFRASTRUCTURE = "flaky_infrastructure"
    RESOURCE_EXHAUSTION = "resource_exhaustion"
    MISSING_PERMISSION = "missing_permission"
    CONFIGURATION_ERROR = "configuration_error"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FailureRule:
    name: str
    failure_class: FailureClass
    weight: int
    pattern: re.Pattern[str]


# The shape of a secret's variable name, to spot one that is missing; not a secret itself.
_SECRET_NAME = (
    r"[A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|CREDENTIALS?)[A-Z0-9_]*"  # noqa: S105
)

# One rule per line: name, weight and pattern read together, under the class they point to.
# fmt: off
_RULES: dict[FailureClass, tuple[tuple[str, int, str], ...]] = {
    # Tests: a runner reporting failed tests.
    FailureClass.TEST_FAILURE: (
        ("pytest_failed_test", 7, r"^(?:FAILED|ERROR) \S+::\S+"),
        ("pytest_failures_banner", 5, r"^=+ (?:FAILURES|ERRORS) =+$"),
        ("pytest_summary", 4, r"\b\d+ (?:failed|errors?)\b.* in [\d.]+s"),
        ("pytest_assert_line", 4, r"^E\s+(?:assert|Assertion)"),
        ("setup_error", 5, r"ERROR at (?:setup|teardown) of"),
        ("unittest_fail", 7, r"^(?:FAIL|ERROR): test\w*"),
        ("unittest_summary", 5, r"^FAILED \((?:failures|errors)=\d+"),
        ("assertion_error", 3, r"AssertionError"),
        ("node_test_fail", 6, r"^\u2139 fail [1-9]|^# fail [1-9]|\u2716 failing tests"),
        ("js_failing", 6, r"\b\d+ failing\b|Tests:\s+\d+ failed"),
        ("junit_failures", 6, r"Tests run: \d+, Failures: [1-9]"),
        ("go_test_fail", 6, r"^--- FAIL: |^FAIL\s+\S+\s+[\d.]+s$"),
        ("hypothesis", 4, r"Falsifying example"),
    ),
    # Compilers and type checkers.
    FailureClass.COMPILE_ERROR: (
        ("c_compiler_error", 9, r"^\S+\.(?:c|cc|cpp|cxx|h|hpp|m|mm):\d+:\d+: (?:fatal )?error:"),
        ("linker_undefined", 9, r"undefined reference to|ld returned \d+"),
        ("mypy_error", 9, r"^\S+\.pyi?:\d+: error: .*\[[a-z-]+\]\s*$"),
        ("mypy_summary", 6, r"^Found \d+ errors? in \d+ files? \(checked"),
        ("syntax_error", 7, r"^\s*(?:SyntaxError|IndentationError|TabError)\b"),
        ("compile_failed", 5, r"Error compiling|[Cc]ompilation (?:failed|terminated)"),
        ("typescript", 9, r"error TS\d{4}:"),
        ("rust", 8, r"^error\[E\d{4}\]"),
        ("java", 8, r"error: cannot find symbol|\[ERROR\] .*COMPILATION ERROR"),
    ),
    # Linters and formatters.
    FailureClass.LINT_FORMAT: (
        ("lint_location_code", 8, r"^\S+:\d+:\d+: [A-Z]{1,4}\d{3,4}\b"),
        ("ruff_rule_header", 6, r"^[A-Z]{1,4}\d{3,4} (?:\[\*\] )?\S"),
        ("ruff_found", 5, r"^Found \d+ errors?\.$"),
        ("fixable", 8, r"\d+ fixable with the `--fix` option|fixable with `--fix`"),
        ("would_reformat", 9, r"[Ww]ould reformat|would be reformatted"),
        ("annotation", 9, r"^::(?:error|warning) title=(?:ruff|flake8|eslint|pylint)"),
        ("whitespace", 8, r": trailing whitespace\.$|new blank line at EOF"),
        ("eslint", 8, r"✖ \d+ problems? \(\d+ errors?"),
        ("prettier", 9, r"Code style issues found|Forgot to run Prettier"),
        ("format_diff", 4, r"^[-+]{3} \S+\t?.*$|^@@ -\d+"),
    ),
    # Dependency resolution.
    FailureClass.DEPENDENCY_RESOLUTION: (
        ("pip_no_version", 5, r"Could not find a version that satisfies"),
        ("pip_no_distribution", 4, r"No matching distribution found"),
        ("pip_conflict", 9, r"conflicting dependencies|ResolutionImpossible"),
        ("python_requires", 8, r"requires a different Python"),
        ("npm_eresolve", 9, r"\bERESOLVE\b|unable to resolve dependency tree"),
        ("npm_etarget", 8, r"\bETARGET\b|No matching version found for"),
        ("npm_not_cached", 7, r"\bENOTCACHED\b"),
        ("npm_not_found", 6, r"npm error code E404|is not in this registry"),
        ("lockfile", 6, r"lock ?file .*(?:out of date|not up to date)|poetry\.lock"),
        ("module_missing", 3, r"ModuleNotFoundError: No module named|Cannot find module"),
    ),
    # Flaky infrastructure: the network, timeouts, a lost runner, a rate-limited registry.
    FailureClass.FLAKY_INFRASTRUCTURE: (
        ("connection_refused", 9, r"[Cc]onnection refused|ECONNREFUSED|Failed to establish a new connection|Couldn't connect to server|Failed to connect to"),
        ("dns", 9, r"Could not resolve host|Name or service not known|Temporary failure in name resolution|getaddrinfo|ENOTFOUND|EAI_AGAIN"),
        ("timed_out", 7, r"[Tt]imed out|ETIMEDOUT|TimeoutError|timeout:|took longer than|exceeded .*(?:timeout|time limit|limit)"),
        ("rate_limited", 9, r"\b429\b|Too Many Requests|[Rr]ate limit(?:ed)? exceeded|API rate limit"),
        ("server_error", 8, r"\bE50[234]\b|50[234] (?:Service Unavailable|Bad Gateway|Gateway Time-?out)|returned error: 50[234]\b"),
        ("connection_lost", 8, r"transfer closed with|[Cc]onnection reset|ECONNRESET|RPC failed|early EOF|unexpected EOF|Broken pipe"),
        ("runner_lost", 9, r"lost communication with the server|runner has received a shutdown signal|[Rr]unner (?:system failure|lost)|The hosted runner"),
        ("retrying", 2, r"WARNING: Retrying|retrying in \d"),
    ),
    # Resources: memory, disk, file descriptors.
    FailureClass.RESOURCE_EXHAUSTION: (
        ("memory_error", 20, r"\bMemoryError\b"),
        ("out_of_memory", 20, r"[Oo]ut of memory|Cannot allocate memory|OOMKilled|memory exhausted|exit code 137\b"),
        ("disk_full", 20, r"No space left on device|ENOSPC|[Dd]isk quota exceeded"),
        ("file_descriptors", 20, r"Too many open files|EMFILE"),
        ("file_size", 10, r"File too large|File size limit exceeded"),
        ("killed", 6, r"^Killed$|signal: killed"),
    ),
    # Permissions and secrets.
    FailureClass.MISSING_PERMISSION: (
        ("permission_denied", 8, r"[Pp]ermission denied|EACCES|Operation not permitted"),
        ("http_auth", 9, r"returned error: 40[13]\b|\b40[13] (?:Unauthorized|Forbidden)|\bE40[13]\b|ENEEDAUTH"),
        ("auth_failed", 9, r"Authentication failed|could not read Username|[Bb]ad credentials|need auth|not authorized|Resource not accessible by integration"),
        ("push_rejected", 6, r"\[remote rejected\]|hook declined"),
        ("secret_unset", 9, rf"\b{_SECRET_NAME}\b.*(?:is not set|not set|is empty|parameter null)"),
        ("secret_keyerror", 9, rf"KeyError: '{_SECRET_NAME}'"),
        ("secret_missing", 7, r"(?:secret|token|credential)s? (?:is )?(?:missing|not (?:set|found|provided))"),
    ),
    # Configuration: documents that do not parse, tools refusing their own settings.
    FailureClass.CONFIGURATION_ERROR: (
        ("yaml_error", 10, r"yaml\.\w+\.(?:Scanner|Parser|Composer|Constructor)Error|mapping values are not allowed|cannot start any token|could not find expected ':'"),
        ("json_error", 9, r"\bEJSONPARSE\b|JSONDecodeError|Failed to parse JSON"),
        ("toml_error", 9, r"TOML parse error|TOMLDecodeError|Failed to parse \S*\.toml"),
        ("make_syntax", 9, r"\*\*\* missing separator|No rule to make target"),
        ("bad_config_line", 9, r"bad config (?:line|file)|invalid config|[Ii]nvalid configuration"),
        ("unrecognized_option", 6, r"unrecognized arguments?:|[Uu]nknown (?:option|config(?:uration)? key)|inifile:"),
        ("config_location", 5, r"^\S+\.(?:ya?ml|toml|ini|cfg|json):\d+:"),
        ("missing_key", 5, r"missing required (?:key|field|property)|[Uu]nknown (?:key|field)|is not a valid"),
    ),
}
# fmt: on

RULES: tuple[FailureRule, ...] = tuple(
    FailureRule(name=f"{cls.value}.{name}", failure_class=cls, weight=weight, pattern=re.compile(p))
    for cls, rules in _RULES.items()
    for name, weight, p in rules
)
