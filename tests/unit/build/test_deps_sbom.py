"""The dependency step's plan and cache key, and the SBOM's content (pure: no containers, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yunzhou.build.deps import GENERATED_REQUIREMENTS, LOCKFILE_HINT, plan_dependencies
from yunzhou.build.sbom import (
    Package,
    parse_dist_metadata,
    parse_dpkg_status,
    parse_npm_lock,
    spdx_document,
    venv_packages,
)

STACK = "sha256:" + "a" * 64


def _plan(stack: str, files: dict[str, str], **kw: object):
    def read(name: str) -> bytes | None:
        return files[name].encode() if name in files else None

    return plan_dependencies(stack, files, read, lambda: "sha256:tree", **kw)  # type: ignore[arg-type]


def test_python_requirements_install_into_the_stacks_venv_from_the_read_only_source() -> None:
    step = _plan("python", {"requirements.txt": "six==1.16.0\n", "app.py": ""})
    assert step is not None
    assert (step.tool, step.output) == ("pip", "/opt/venv")
    assert "python3 -m venv /opt/venv" in step.script
    assert "/opt/venv/bin/pip install --no-cache-dir --no-compile" in step.script
    assert "-r /mnt/requirements.txt" in step.script
    assert step.inputs == (("requirements.txt", b"six==1.16.0\n"),)


def test_included_requirement_files_are_part_of_the_cache_key() -> None:
    files = {
        "requirements.txt": "-r base.txt\n-c constraints.txt\n",
        "base.txt": "six\n",
        "constraints.txt": "six==1.16.0\n",
    }
    step = _plan("python", files)
    assert step is not None
    assert [name for name, _ in step.inputs] == ["requirements.txt", "base.txt", "constraints.txt"]
    changed = _plan("python", {**files, "constraints.txt": "six==1.15.0\n"})
    assert changed is not None
    assert changed.cache_key(STACK) != step.cache_key(STACK)


@pytest.mark.parametrize(
    ("files", "source", "listed"),
    [
        (
            {"pyproject.toml": '[project]\nname="a"\ndependencies=["six>=1", "attrs"]\n'},
            "pyproject.toml",
            "attrs\nsix>=1\n",
        ),
        (
            {
                "Pipfile": "[packages]\nsix='*'\n",
                "Pipfile.lock": json.dumps({"default": {"six": {"version": "==1.16.0"}}}),
            },
            "Pipfile.lock",
            "six==1.16.0\n",
        ),
        ({"Pipfile": "[packages]\nsix='*'\nattrs={version='==23.1'}\n"}, "Pipfile", "attrs==23.1\nsix\n"),
    ],
)
def test_listed_dependencies_are_installed_without_the_project(
    files: dict[str, str], source: str, listed: str
) -> None:
    step = _plan("python", files)
    assert step is not None
    assert step.generated == ((GENERATED_REQUIREMENTS, listed.encode()),)
    assert step.inputs == ((source, listed.encode()),)
    assert f"-r {GENERATED_REQUIREMENTS}" in step.script
    assert (
        "pip install --no-cache-dir --no-compile --no-input --disable-pip-version-check /" not in step.script
    )


def test_setup_py_installs_a_copy_of_the_project_keyed_by_the_whole_tree() -> None:
    step = _plan("python", {"setup.py": "", "app.py": ""})
    assert step is not None
    assert "cp -R /mnt /var/tmp/src" in step.script
    assert step.inputs == (("source-tree", b"sha256:tree"),)


def test_node_uses_npm_ci_with_a_lockfile_and_says_why_without_one() -> None:
    locked = _plan("node", {"package.json": "{}", "package-lock.json": "{}"})
    assert locked is not None
    assert "npm ci --omit=dev" in locked.script
    assert not locked.notes
    assert (locked.output, locked.cwd) == ("/app/node_modules", "/app")
    loose = _plan("node", {"package.json": "{}"})
    assert loose is not None
    assert "npm install --omit=dev" in loose.script
    assert loose.notes == (LOCKFILE_HINT,)
    assert "package-lock.json" in LOCKFILE_HINT
    assert "reproducible" in LOCKFILE_HINT


@pytest.mark.parametrize("stack", ["java", "tomcat", "static", "dockerfile"])
def test_stacks_without_dependency_layers(stack: str) -> None:
    assert _plan(stack, {"requirements.txt": "six", "package.json": "{}"}) is None


def test_no_manifest_means_no_dependency_layer() -> None:
    assert _plan("python", {"app.py": ""}) is None
    # a requirements.txt of comments and blank lines (the demo's) asks pip for nothing: no venv is made
    assert _plan("python", {"requirements.txt": "# stdlib only\n\n  # really\n", "app.py": ""}) is None
    assert _plan("python", {"requirements.txt": "# none\n-r more.txt\n", "more.txt": "six\n"}) is not None
    assert _plan("node", {"server.js": ""}) is None


def test_the_cache_key_covers_stack_lockfile_and_recipe_and_nothing_else() -> None:
    base = _plan("python", {"requirements.txt": "six\n", "app.py": "print(1)"})
    same = _plan("python", {"requirements.txt": "six\n", "app.py": "print(2)", "README": "x"})
    other_req = _plan("python", {"requirements.txt": "six==1.16.0\n"})
    other_venv = _plan("python", {"requirements.txt": "six\n"}, layout={"venv": "/srv/venv"})
    assert base is not None
    assert same is not None
    assert other_req is not None
    assert other_venv is not None
    key = base.cache_key(STACK)
    assert key.startswith("sha256:")
    assert key == same.cache_key(STACK)
    assert key != base.cache_key("sha256:" + "b" * 64)
    assert key != other_req.cache_key(STACK)
    assert key != other_venv.cache_key(STACK)


DPKG_STATUS = """Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.2.13.dfsg-1
Description: compression library
 continuation: not a field

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
"""


def test_dpkg_status_lists_installed_packages_only() -> None:
    assert parse_dpkg_status(DPKG_STATUS) == [
        Package("deb", "bash", "5.2.15-2+b2", "amd64"),
        Package("deb", "zlib1g", "1:1.2.13.dfsg-1", "amd64"),
    ]


def test_python_and_npm_packages(tmp_path: Path) -> None:
    dist = tmp_path / "lib/python3.11/site-packages/six-1.16.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n\nBody: no\n")
    assert venv_packages(tmp_path) == [Package("pypi", "six", "1.16.0")]
    assert parse_dist_metadata("Name: x\n") is None
    lock = {
        "packages": {
            "": {"name": "app"},
            "node_modules/ms": {"version": "2.1.3"},
            "node_modules/@scope/p": {"version": "1.0.0"},
            "node_modules/jest": {"version": "29.0.0", "dev": True},
        }
    }
    assert parse_npm_lock(json.dumps(lock).encode()) == [
        Package("npm", "@scope/p", "1.0.0"),
        Package("npm", "ms", "2.1.3"),
    ]
    assert Package("npm", "@scope/p", "1.0.0").purl() == "pkg:npm/%40scope/p@1.0.0"
    assert Package("pypi", "Typing_Extensions", "4").purl() == "pkg:pypi/typing-extensions@4"
    assert parse_npm_lock(b"not json") == []


def test_the_sbom_is_spdx_and_the_same_for_the_same_packages_in_any_order() -> None:
    packages = [
        *parse_dpkg_status(DPKG_STATUS),
        Package("pypi", "six", "1.16.0"),
        Package("npm", "ms", "2.1.3"),
    ]
    digest = "sha256:" + "c" * 64
    first = spdx_document("shop/web", digest, packages)
    assert first == spdx_document("shop/web", digest, list(reversed(packages)) + packages[:1])
    doc = json.loads(first)
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["creationInfo"]["created"] == "1970-01-01T00:00:00Z"
    assert doc["documentNamespace"] == "urn:yunzhou:spdx:" + "c" * 64
    names = [p["name"] for p in doc["packages"][1:]]
    assert names == ["bash", "zlib1g", "ms", "six"]
    purls = {p["externalRefs"][0]["referenceLocator"] for p in doc["packages"][1:]}
    assert "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian" in purls
    assert len(doc["relationships"]) == 1 + len(names)
