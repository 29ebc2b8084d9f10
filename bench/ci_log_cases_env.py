"""Corpus cases whose failure comes from the job's surroundings: dependencies, the network,
resources, credentials, configuration, and failures that say nothing (unknown)."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

from bench.ci_log_cases import PY, Run, case, sh, write
from bench.ci_log_servers import (
    closed_port,
    npm_registry_responder,
    serve,
    silent_listener,
    status_responder,
    truncating_responder,
)

PIP = f"{PY} -m pip --isolated --disable-pip-version-check --no-input --no-cache-dir"


def wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: tuple[str, ...] = (),
    python: str | None = None,
) -> None:
    """A minimal, valid pure-Python wheel, so pip resolves against a local directory."""
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if python:
        metadata += f"Requires-Python: {python}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{name}/__init__.py": "",
        f"{dist}/METADATA": metadata,
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: dragon-corpus\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


def local_index(work: Path) -> Path:
    wheels = work / "wheels"
    wheel(wheels, "acme_core", "1.0.0")
    wheel(wheels, "acme_core", "2.0.0")
    wheel(wheels, "acme_client", "1.4.0", requires=("acme_core==1.0.0",))
    wheel(wheels, "acme_plugins", "0.3.0", requires=("acme_core>=2",))
    wheel(wheels, "acme_future", "1.0.0", python=">=4")
    return wheels


def pip_install(work: Path, args: str) -> Run:
    wheels = local_index(work)
    return sh(
        work,
        f"{PIP} install --dry-run --ignore-installed --no-index --find-links {wheels} {args}",
        shown=f"pip install {args}",
    )


# --- dependency resolution ----------------------------------------------------------------


@case(
    "dependency_resolution", "pip_missing", "pip install --no-index of a package not in the index"
)
def _(work: Path) -> Run:
    return pip_install(work, "acme-telemetry==3.1.0")


@case(
    "dependency_resolution", "pip_conflict", "pip install of two packages pinning acme_core apart"
)
def _(work: Path) -> Run:
    return pip_install(work, "acme_client acme_plugins")


@case(
    "dependency_resolution", "pip_pin_conflict", "pip install -r with a pin its dependent refuses"
)
def _(work: Path) -> Run:
    write(work, {"requirements.txt": "acme_client==1.4.0\nacme_core==2.0.0\n"})
    return pip_install(work, "-r requirements.txt")


@case("dependency_resolution", "pip_no_version", "pip install of a version the index does not have")
def _(work: Path) -> Run:
    return pip_install(work, "acme_core==9.9")


@case("dependency_resolution", "pip_python_requires", "pip install of a wheel needing Python >= 4")
def _(work: Path) -> Run:
    return pip_install(work, "acme_future")


@case(
    "dependency_resolution", "npm_eresolve", "npm install against a local registry, peer conflict"
)
def _(work: Path) -> Run:
    def packument(name: str, versions: dict[str, dict[str, object]]) -> dict[str, object]:
        return {
            "name": name,
            "dist-tags": {"latest": max(versions)},
            "versions": {
                v: {"name": name, "version": v, "dist": {"tarball": f"http://127.0.0.1/{name}.tgz"}}
                | extra
                for v, extra in versions.items()
            },
        }

    registry = {
        "ui-kit": packument("ui-kit", {"3.0.0": {"peerDependencies": {"react": "^18.0.0"}}}),
        "react": packument("react", {"17.0.2": {}, "18.2.0": {}}),
    }
    with serve(npm_registry_responder(registry)) as port:
        write(
            work,
            {
                "package.json": json.dumps(
                    {
                        "name": "web",
                        "version": "1.0.0",
                        "dependencies": {"react": "17.0.2", "ui-kit": "3.0.0"},
                    }
                ),
                ".npmrc": f"registry=http://127.0.0.1:{port}/\nfetch-retries=0\n",
            },
        )
        return sh(
            work, f"npm install --no-audit --no-fund --cache {work}/.npm", shown="npm install"
        )


@case("dependency_resolution", "npm_offline", "npm install --offline with a package not in cache")
def _(work: Path) -> Run:
    write(
        work,
        {
            "package.json": json.dumps(
                {"name": "svc", "version": "1.0.0", "dependencies": {"left-pad": "1.3.0"}}
            )
        },
    )
    return sh(
        work, f"npm install --offline --no-audit --cache {work}/.npm", shown="npm ci --offline"
    )


# --- flaky infrastructure -----------------------------------------------------------------


@case("flaky_infrastructure", "curl_refused", "curl to a closed local port (connection refused)")
def _(work: Path) -> Run:
    port = closed_port()
    return sh(
        work, f"curl -sSf http://127.0.0.1:{port}/health", shown="curl -sSf $SERVICE_URL/health"
    )


@case("flaky_infrastructure", "python_refused", "a Python test helper connecting to a closed port")
def _(work: Path) -> Run:
    port = closed_port()
    write(
        work,
        {
            "wait_db.py": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        },
    )
    return sh(work, f"{PY} wait_db.py", shown="python scripts/wait_db.py")


@case("flaky_infrastructure", "dns_failure", "curl to a host name that does not resolve")
def _(work: Path) -> Run:
    return sh(
        work,
        "curl -sSfL https://artifacts.build.invalid/cache.tar.gz -o cache.tar.gz",
        shown="curl -sSfL $CACHE_URL -o cache.tar.gz",
    )


@case("flaky_infrastructure", "git_clone_refused", "git clone over HTTP from a closed local port")
def _(work: Path) -> Run:
    port = closed_port()
    return sh(work, f"git clone http://127.0.0.1:{port}/acme/app.git", shown="git clone $REPO_URL")


@case("flaky_infrastructure", "read_timeout", "a client reading from a server that never answers")
def _(work: Path) -> Run:
    with silent_listener() as port:
        return sh(
            work,
            f"curl -sS --max-time 2 http://127.0.0.1:{port}/api",
            shown="curl -sS --max-time 2 $API",
        )


@case("flaky_infrastructure", "step_timeout", "timeout 1 around a step that sleeps 5 s")
def _(work: Path) -> Run:
    return sh(
        work,
        "echo 'waiting for the deployment to become ready'; timeout 1 sleep 5; rc=$?; "
        'echo "timeout: the step exceeded its 1s limit and was killed (exit $rc)"; exit $rc',
        shown="timeout 1 ./wait-ready.sh",
    )


@case(
    "flaky_infrastructure",
    "pip_rate_limited",
    "pip install of a wheel URL on a local server answering 429",
)
def _(work: Path) -> Run:
    with serve(status_responder(429, headers={"Retry-After": "60"})) as port:
        return sh(
            work,
            f"{PIP} install --dry-run --ignore-installed --retries 0 --timeout 3 "
            f"http://127.0.0.1:{port}/packages/requests-2.32.0-py3-none-any.whl",
            shown="pip install -r requirements.lock",
        )


@case(
    "flaky_infrastructure", "npm_registry_503", "npm install against a local registry answering 503"
)
def _(work: Path) -> Run:
    with serve(status_responder(503)) as port:
        write(
            work,
            {
                "package.json": json.dumps(
                    {"name": "w", "version": "1.0.0", "dependencies": {"lodash": "4.17.21"}}
                )
            },
        )
        return sh(
            work,
            f"npm install --no-audit --fetch-retries=0 --registry http://127.0.0.1:{port}/ --cache {work}/.npm",
            shown="npm install",
        )


@case("flaky_infrastructure", "transfer_cut", "curl downloading from a server that closes early")
def _(work: Path) -> Run:
    with serve(truncating_responder) as port:
        return sh(
            work,
            f"curl -sSf -o artifact.bin http://127.0.0.1:{port}/artifact.bin",
            shown="curl -sSf -o artifact.bin $ARTIFACT",
        )


@case("flaky_infrastructure", "pip_refused", "pip install against a local index on a closed port")
def _(work: Path) -> Run:
    port = closed_port()
    return sh(
        work,
        f"{PIP} install --dry-run --ignore-installed --retries 1 --timeout 2 --index-url http://127.0.0.1:{port}/simple flask",
        shown="pip install flask",
    )


# --- resource exhaustion ------------------------------------------------------------------


@case("resource_exhaustion", "python_memoryerror", "python allocating 2 GB under ulimit -v 500000")
def _(work: Path) -> Run:
    write(
        work,
        {
            "load.py": "rows = []\nfor _ in range(64):\n    rows.append(bytearray(64 * 1024 * 1024))\n"
        },
    )
    return sh(work, f"ulimit -v 500000; {PY} load.py", shown="python load_fixtures.py")


@case(
    "resource_exhaustion",
    "pytest_memoryerror",
    "pytest on a test that runs out of memory (prlimit --as)",
)
def _(work: Path) -> Run:
    write(
        work,
        {
            "test_big.py": "def test_matrix():\n    m = [bytearray(10**8) for _ in range(50)]\n    assert m\n"
        },
    )
    return sh(
        work, f"prlimit --as=600000000 {PY} -m pytest -q -p no:cacheprovider", shown="pytest -q"
    )


@case("resource_exhaustion", "node_heap", "node with a 16 MB old space growing an array")
def _(work: Path) -> Run:
    write(
        work, {"grow.js": "const a = [];\nwhile (true) { a.push(new Array(100000).fill('x')); }\n"}
    )
    return sh(work, "node --max-old-space-size=16 grow.js", shown="npm run build")


@case("resource_exhaustion", "disk_full_dd", "dd writing to /dev/full (no space left on device)")
def _(work: Path) -> Run:
    return sh(
        work, "dd if=/dev/zero of=/dev/full bs=1M count=4", shown="./scripts/extract-cache.sh"
    )


@case("resource_exhaustion", "python_enospc", "python writing a build artifact to /dev/full")
def _(work: Path) -> Run:
    write(
        work,
        {
            "pack.py": "with open('/dev/full', 'wb') as f:\n    f.write(b'x' * 65536)\n    f.flush()\n"
        },
    )
    return sh(work, f"{PY} pack.py", shown="python pack.py")


@case("resource_exhaustion", "too_many_files", "python opening files under ulimit -n 32")
def _(work: Path) -> Run:
    write(work, {"scan.py": "handles = [open(__file__) for _ in range(100)]\n"})
    return sh(work, f"ulimit -n 32; {PY} scan.py", shown="python scan.py")


@case("resource_exhaustion", "gcc_oom", "g++ compiling under ulimit -v 60000")
def _(work: Path) -> Run:
    write(
        work,
        {
            "big.cpp": "#include <map>\n#include <string>\nstd::map<std::string, int> m;\nint main() { return 0; }\n"
        },
    )
    return sh(work, "ulimit -v 60000; g++ -O2 -c big.cpp", shown="make -j4")


# --- missing permission or secret ---------------------------------------------------------


@case("missing_permission", "bash_unset_secret", "a deploy script using ${DEPLOY_TOKEN:?} unset")
def _(work: Path) -> Run:
    write(
        work,
        {
            "deploy.sh": 'set -eu\necho "deploying to staging"\ncurl -H "Authorization: Bearer ${DEPLOY_TOKEN:?DEPLOY_TOKEN is not set}" https://deploy.example.com\n'
        },
    )
    return sh(work, "bash deploy.sh", shown="./deploy.sh", env={"DEPLOY_TOKEN": ""})


@case(
    "missing_permission",
    "python_keyerror_secret",
    "a script reading os.environ['AWS_SECRET_ACCESS_KEY']",
)
def _(work: Path) -> Run:
    write(work, {"upload.py": "import os\nkey = os.environ['AWS_SECRET_ACCESS_KEY']\n"})
    return sh(work, f"env -u AWS_SECRET_ACCESS_KEY {PY} upload.py", shown="python upload.py")


@case(
    "missing_permission", "git_push_hook_denied", "git push to a local bare repo whose hook refuses"
)
def _(work: Path) -> Run:
    script = (
        "git init -q --bare origin.git && "
        "printf '#!/bin/sh\\necho \"error: permission denied: ci-bot may not push to refs/heads/main\"\\nexit 1\\n' "
        "> origin.git/hooks/pre-receive && chmod +x origin.git/hooks/pre-receive && "
        "git init -q -b main app && cd app && git config user.email ci@example.com && "
        "git config user.name ci && echo x > f && git add f && git commit -qm x && "
        "git remote add origin ../origin.git && git push origin main"
    )
    return sh(work, script, shown="git push origin main")


@case("missing_permission", "git_clone_401", "git clone from a local server answering 401")
def _(work: Path) -> Run:
    with serve(status_responder(401, headers={"WWW-Authenticate": 'Basic realm="git"'})) as port:
        return sh(
            work,
            f"git clone http://127.0.0.1:{port}/acme/private.git",
            shown="git clone $PRIVATE_REPO",
            env={"GIT_TERMINAL_PROMPT": "0"},
        )


@case("missing_permission", "curl_403", "curl -f against a local server answering 403")
def _(work: Path) -> Run:
    with serve(status_responder(403)) as port:
        return sh(
            work,
            f"curl -sSf -X PUT --data-binary @/dev/null http://127.0.0.1:{port}/releases/v1.2.0",
            shown="curl -sSf -X PUT $RELEASE_URL",
        )


@case("missing_permission", "npm_publish_401", "npm publish to a local registry answering 401")
def _(work: Path) -> Run:
    with serve(status_responder(401)) as port:
        write(
            work,
            {
                "package.json": json.dumps({"name": "acme-widgets", "version": "1.0.0"}),
                "index.js": "",
            },
        )
        return sh(
            work,
            f"npm publish --registry http://127.0.0.1:{port}/ --cache {work}/.npm",
            shown="npm publish",
        )


@case("missing_permission", "permission_denied_file", "reading a 0600 file as the nobody user")
def _(work: Path) -> Run:
    write(work, {"signing.key": "not a real key\n"})
    return sh(
        work,
        f"chmod 600 signing.key; chmod 755 {work}; setpriv --reuid=nobody --regid=nogroup --clear-groups cat signing.key",
        shown="cat $SIGNING_KEY_FILE",
    )


# --- configuration errors -----------------------------------------------------------------


@case("configuration_error", "yaml_mapping", "yaml.safe_load on a config with a bad mapping")
def _(work: Path) -> Run:
    write(work, {"deploy.yml": "service: web\nreplicas: 3\n  image: acme/web:1.2\nports: [80\n"})
    return sh(
        work,
        f"{PY} -c \"import yaml; yaml.safe_load(open('deploy.yml'))\"",
        shown="python -m deploy validate deploy.yml",
    )


@case("configuration_error", "yaml_tab", "yaml.safe_load on a file indented with a tab")
def _(work: Path) -> Run:
    write(work, {"ci.yml": "jobs:\n\tbuild:\n    runs-on: ubuntu-latest\n"})
    return sh(
        work,
        f"{PY} -c \"import yaml; yaml.safe_load(open('ci.yml'))\"",
        shown="python tools/check_ci.py ci.yml",
    )


@case("configuration_error", "npm_bad_package_json", "npm install with an invalid package.json")
def _(work: Path) -> Run:
    write(work, {"package.json": '{"name": "web", "version": "1.0.0",, "scripts": {}}\n'})
    return sh(work, f"npm install --offline --cache {work}/.npm", shown="npm install")


@case("configuration_error", "make_separator", "make with a recipe indented by spaces")
def _(work: Path) -> Run:
    write(work, {"Makefile": "build:\n    echo building\n"})
    return sh(work, "make build", shown="make build")


@case("configuration_error", "pytest_bad_ini", "pytest with an unknown option in its ini addopts")
def _(work: Path) -> Run:
    write(
        work,
        {
            "pytest.ini": "[pytest]\naddopts = --cov-fail-under=90\n",
            "test_x.py": "def test_x():\n    pass\n",
        },
    )
    return sh(work, f"{PY} -m pytest -p no:cacheprovider", shown="pytest")


@case("configuration_error", "git_bad_config", "git status with a broken .git/config")
def _(work: Path) -> Run:
    return sh(
        work,
        "git init -q . && printf '[core\\n  bare = false\\n' >> .git/config && git status",
        shown="git status",
    )


@case("configuration_error", "toml_invalid", "ruff reading an invalid pyproject.toml")
def _(work: Path) -> Run:
    write(
        work,
        {
            "pyproject.toml": '[tool.ruff]\nline-length = 100\nselect = ["E", "F"\n',
            "a.py": "x = 1\n",
        },
    )
    return sh(work, f"{PY} -m ruff check --no-cache .", shown="ruff check .")


@case("configuration_error", "dragon_policy", "dragon policy check on a policy with mistakes")
def _(work: Path) -> Run:
    write(
        work, {"policy.yaml": "version: 1\nname: team\nrules:\n  - id: Bad Id\n    effect: maybe\n"}
    )
    dragon = Path(PY).with_name("dragon")
    return sh(work, f"{dragon} policy check policy.yaml", shown="dragon policy check policy.yaml")


# --- unknown ------------------------------------------------------------------------------


@case("unknown", "bare_exit", "a script that prints progress and exits 1 without saying why")
def _(work: Path) -> Run:
    return sh(work, "echo 'step 1/3 done'; echo 'step 2/3 done'; exit 1", shown="./ci/run-all.sh")


@case("unknown", "segfault", "python dereferencing a null pointer through ctypes")
def _(work: Path) -> Run:
    return sh(
        work,
        f"{PY} -X faulthandler -c 'import ctypes; ctypes.string_at(0)'",
        shown="python -m worker.selfcheck",
    )


@case("unknown", "runtime_error", "a release script raising RuntimeError on an unexpected state")
def _(work: Path) -> Run:
    write(
        work,
        {
            "release.py": "state = {'phase': 'draft'}\nif state['phase'] != 'ready':\n    raise RuntimeError(f\"release in unexpected phase {state['phase']!r}\")\n"
        },
    )
    return sh(work, f"{PY} release.py", shown="python release.py")


@case("unknown", "exit_code_42", "a tool exiting 42 after ordinary output")
def _(work: Path) -> Run:
    return sh(
        work,
        "echo 'collecting artifacts'; echo 'uploading 3 files'; exit 42",
        shown="./upload-artifacts",
    )


@case("unknown", "missing_file", "ls of a path that is not there")
def _(work: Path) -> Run:
    return sh(work, "ls dist/", shown="ls dist/")


@case("unknown", "abort", "a process that aborts (SIGABRT)")
def _(work: Path) -> Run:
    return sh(
        work, f"{PY} -c 'import os; print(\"finalizing\"); os.abort()'", shown="./bin/finalize"
    )
