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

_RULES: tuple[tuple[FailureClass, str, int, str], ...] = (
    # Tests: a runner reporting failed tests.
    (FailureClass.TEST_FAILURE, "pytest_failed_test", 7, r"^(?:FAILED|ERROR) \S+::\S+"),
    (FailureClass.TEST_FAILURE, "pytest_failures_banner", 5, r"^=+ (?:FAILURES|ERRORS) =+$"),
    (FailureClass.TEST_FAILURE, "pytest_summary", 4, r"\b\d+ (?:failed|errors?)\b.* in [\d.]+s"),
    (FailureClass.TEST_FAILURE, "pytest_assert_line", 4, r"^E\s+(?:assert|Assertion)"),
    (FailureClass.TEST_FAILURE, "setup_error", 5, r"ERROR at (?:setup|teardown) of"),
    (FailureClass.TEST_FAILURE, "unittest_fail", 7, r"^(?:FAIL|ERROR): test\w*"),
    (FailureClass.TEST_FAILURE, "unittest_summary", 5, r"^FAILED \((?:failures|errors)=\d+"),
    (FailureClass.TEST_FAILURE, "assertion_error", 3, r"AssertionError"),
    (
        FailureClass.TEST_FAILURE,
        "node_test_fail",
        6,
        r"^\u2139 fail [1-9]|^# fail [1-9]|\u2716 failing tests",
    ),
    (FailureClass.TEST_FAILURE, "js_failing", 6, r"\b\d+ failing\b|Tests:\s+\d+ failed"),
    (FailureClass.TEST_FAILURE, "junit_failures", 6, r"Tests run: \d+, Failures: [1-9]"),
    (FailureClass.TEST_FAILURE, "go_test_fail", 6, r"^--- FAIL: |^FAIL\s+\S+\s+[\d.]+s$"),
    (FailureClass.TEST_FAILURE, "hypothesis", 4, r"Falsifying example"),
    # Compilers and type checkers.
    (
        FailureClass.COMPILE_ERROR,
        "c_compiler_error",
        9,
        r"^\S+\.(?:c|cc|cpp|cxx|h|hpp|m|mm):\d+:\d+: (?:fatal )?error:",
    ),
    (FailureClass.COMPILE_ERROR, "linker_undefined", 9, r"undefined reference to|ld returned \d+"),
    (FailureClass.COMPILE_ERROR, "mypy_error", 9, r"^\S+\.pyi?:\d+: error: .*\[[a-z-]+\]\s*$"),
    (FailureClass.COMPILE_ERROR, "mypy_summary", 6, r"^Found \d+ errors? in \d+ files? \(checked"),
    (
        FailureClass.COMPILE_ERROR,
        "syntax_error",
        7,
        r"^\s*(?:SyntaxError|IndentationError|TabError)\b",
    ),
    (
        FailureClass.COMPILE_ERROR,
        "compile_failed",
        5,
        r"Error compiling|[Cc]ompilation (?:failed|terminated)",
    ),
    (FailureClass.COMPILE_ERROR, "typescript", 9, r"error TS\d{4}:"),
    (FailureClass.COMPILE_ERROR, "rust", 8, r"^error\[E\d{4}\]"),
    (
        FailureClass.COMPILE_ERROR,
        "java",
        8,
        r"error: cannot find symbol|\[ERROR\] .*COMPILATION ERROR",
    ),
    # Linters and formatters.
    (FailureClass.LINT_FORMAT, "lint_location_code", 8, r"^\S+:\d+:\d+: [A-Z]{1,4}\d{3,4}\b"),
    (FailureClass.LINT_FORMAT, "ruff_rule_header", 6, r"^[A-Z]{1,4}\d{3,4} (?:\[\*\] )?\S"),
    (FailureClass.LINT_FORMAT, "ruff_found", 5, r"^Found \d+ errors?\.$"),
    (
        FailureClass.LINT_FORMAT,
        "fixable",
        8,
        r"\d+ fixable with the `--fix` option|fixable with `--fix`",
    ),
    (FailureClass.LINT_FORMAT, "would_reformat", 9, r"[Ww]ould reformat|would be reformatted"),
    (
        FailureClass.LINT_FORMAT,
        "annotation",
        9,
        r"^::(?:error|warning) title=(?:ruff|flake8|eslint|pylint)",
    ),
    (FailureClass.LINT_FORMAT, "whitespace", 8, r": trailing whitespace\.$|new blank line at EOF"),
    (FailureClass.LINT_FORMAT, "eslint", 8, r"✖ \d+ problems? \(\d+ errors?"),
    (FailureClass.LINT_FORMAT, "prettier", 9, r"Code style issues found|Forgot to run Prettier"),
    (FailureClass.LINT_FORMAT, "format_diff", 4, r"^[-+]{3} \S+\t?.*$|^@@ -\d+"),
    # Dependency resolution.
    (
        FailureClass.DEPENDENCY_RESOLUTION,
        "pip_no_version",
        5,
        r"Could not find a version that satisfies",
    ),
    (
        FailureClass.DEPENDENCY_RESOLUTION,
        "pip_no_distribution",
        4,
        r"No matching distribution found",
    ),
    (
        FailureClass.DEPENDENCY_RESOLUTION,
        "pip_conflict",
        9,
        r"conflicting dependencies|ResolutionImpossible",
    ),
    (FailureClass.DEPENDENCY_RESOLUTION, "python_requires", 8, r"requires a different Python"),
    (
        FailureClass.DEPENDENCY_RESOLUTION,
        "npm_eresolve",
        9,
        r"\bERESOLVE\b|unable to resolve dependency tree",
    ),
    (
        FailureClass.DEPENDENCY_RESOLUTION,
        "npm_etarget",
        8,
        r"\bETARGET\b|No matching version found for",
    ),
    (FailureClass.DEPENDENCY_RESOLUTION, "npm_not_cached", 7, r"\bENOTCACHED\b"),
    (
        FailureClass.DEPENDENCY_RESOLUTION,
        "npm_not_found",
        6,
        r"npm error code E404|is not in this registry",
    ),
    (
        FailureClass.DEPENDENCY_RESOLUTION,
        "lockfile",
        6,
        r"lock ?file .*(?:out of date|not up to date)|poetry\.lock",
    ),
    (
        FailureClass.DEPENDENCY_RESOLUTION,
        "module_missing",
        3,
        r"ModuleNotFoundError: No module named|Cannot find module",
    ),
    # Flaky infrastructure: the network, timeouts, a lost runner, a rate-limited registry.
    (
        FailureClass.FLAKY_INFRASTRUCTURE,
        "connection_refused",
        9,
        r"[Cc]onnection refused|ECONNREFUSED|Failed to establish a new connection|Couldn't connect to server|Failed to connect to",
    ),
    (
        FailureClass.FLAKY_INFRASTRUCTURE,
        "dns",
        9,
        r"Could not resolve host|Name or service not known|Temporary failure in name resolution|getaddrinfo|ENOTFOUND|EAI_AGAIN",
    ),
    (
        FailureClass.FLAKY_INFRASTRUCTURE,
        "timed_out",
        7,
        r"[Tt]imed out|ETIMEDOUT|TimeoutError|timeout:|took longer than|exceeded .*(?:timeout|time limit|limit)",
    ),
    (
        FailureClass.FLAKY_INFRASTRUCTURE,
        "rate_limited",
        9,
        r"\b429\b|Too Many Requests|[Rr]ate limit(?:ed)? exceeded|API rate limit",
    ),
    (
        FailureClass.FLAKY_INFRASTRUCTURE,
        "server_error",
        8,
        r"\bE50[234]\b|50[234] (?:Service Unavailable|Bad Gateway|Gateway Time-?out)|returned error: 50[234]\b",
    ),
    (
        FailureClass.FLAKY_INFRASTRUCTURE,
        "connection_lost",
        8,
        r"transfer closed with|[Cc]onnection reset|ECONNRESET|RPC failed|early EOF|unexpected EOF|Broken pipe",
    ),
    (
        FailureClass.FLAKY_INFRASTRUCTURE,
        "runner_lost",
        9,
        r"lost communication with the server|runner has received a shutdown signal|[Rr]unner (?:system failure|lost)|The hosted runner",
    ),
    (FailureClass.FLAKY_INFRASTRUCTURE, "retrying", 2, r"WARNING: Retrying|retrying in \d"),
    # Resources: memory, disk, file descriptors.
    (FailureClass.RESOURCE_EXHAUSTION, "memory_error", 20, r"\bMemoryError\b"),
    (
        FailureClass.RESOURCE_EXHAUSTION,
        "out_of_memory",
        20,
        r"[Oo]ut of memory|Cannot allocate memory|OOMKilled|memory exhausted|exit code 137\b",
    ),
    (
        FailureClass.RESOURCE_EXHAUSTION,
        "disk_full",
        20,
        r"No space left on device|ENOSPC|[Dd]isk quota exceeded",
    ),
    (FailureClass.RESOURCE_EXHAUSTION, "file_descriptors", 20, r"Too many open files|EMFILE"),
    (FailureClass.RESOURCE_EXHAUSTION, "file_size", 10, r"File too large|File size limit exceeded"),
    (FailureClass.RESOURCE_EXHAUSTION, "killed", 6, r"^Killed$|signal: killed"),
    # Permissions and secrets.
    (
        FailureClass.MISSING_PERMISSION,
        "permission_denied",
        8,
        r"[Pp]ermission denied|EACCES|Operation not permitted",
    ),
    (
        FailureClass.MISSING_PERMISSION,
        "http_auth",
        9,
        r"returned error: 40[13]\b|\b40[13] (?:Unauthorized|Forbidden)|\bE40[13]\b|ENEEDAUTH",
    ),
    (
        FailureClass.MISSING_PERMISSION,
        "auth_failed",
        9,
        r"Authentication failed|could not read Username|[Bb]ad credentials|need auth|not authorized|Resource not accessible by integration",
    ),
    (FailureClass.MISSING_PERMISSION, "push_rejected", 6, r"\[remote rejected\]|hook declined"),
    (
        FailureClass.MISSING_PERMISSION,
        "secret_unset",
        9,
        rf"\b{_SECRET_NAME}\b.*(?:is not set|not set|is empty|parameter null)",
    ),
    (FailureClass.MISSING_PERMISSION, "secret_keyerror", 9, rf"KeyError: '{_SECRET_NAME}'"),
    (
        FailureClass.MISSING_PERMISSION,
        "secret_missing",
        7,
        r"(?:secret|token|credential)s? (?:is )?(?:missing|not (?:set|found|provided))",
    ),
    # Configuration: documents that do not parse, tools refusing their own settings.
    (
        FailureClass.CONFIGURATION_ERROR,
        "yaml_error",
        10,
        r"yaml\.\w+\.(?:Scanner|Parser|Composer|Constructor)Error|mapping values are not allowed|cannot start any token|could not find expected ':'",
    ),
    (
        FailureClass.CONFIGURATION_ERROR,
        "json_error",
        9,
        r"\bEJSONPARSE\b|JSONDecodeError|Failed to parse JSON",
    ),
    (
        FailureClass.CONFIGURATION_ERROR,
        "toml_error",
        9,
        r"TOML parse error|TOMLDecodeError|Failed to parse \S*\.toml",
    ),
    (
        FailureClass.CONFIGURATION_ERROR,
        "make_syntax",
        9,
        r"\*\*\* missing separator|No rule to make target",
    ),
    (
        FailureClass.CONFIGURATION_ERROR,
        "bad_config_line",
        9,
        r"bad config (?:line|file)|invalid config|[Ii]nvalid configuration",
    ),
    (
        FailureClass.CONFIGURATION_ERROR,
        "unrecognized_option",
        6,
        r"unrecognized arguments?:|[Uu]nknown (?:option|config(?:uration)? key)|inifile:",
    ),
    (
        FailureClass.CONFIGURATION_ERROR,
        "config_location",
        5,
        r"^\S+\.(?:ya?ml|toml|ini|cfg|json):\d+:",
    ),
    (
        FailureClass.CONFIGURATION_ERROR,
        "missing_key",
        5,
        r"missing required (?:key|field|property)|[Uu]nknown (?:key|field)|is not a valid",
    ),
)

RULES: tuple[FailureRule, ...] = tuple(
    FailureRule(name=f"{cls.value}.{name}", failure_class=cls, weight=weight, pattern=re.compile(p))
    for cls, name, weight, p in _RULES
)
