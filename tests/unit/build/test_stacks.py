"""Stack definitions, cache keys, mmdebstrap's command line and the stack's own layer (no tools run)."""

from __future__ import annotations

import fcntl
import hashlib
import io
import struct
import tarfile
import threading
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from yunzhou.build.debian import (
    APT_SOURCES_ENV,
    RootfsRecipe,
    find_apt_sources,
    mmdebstrap_argv,
    mmdebstrap_env,
)
from yunzhou.build.oci import ImageStore
from yunzhou.build.stacks import (
    STACKS,
    STACKS_FILE,
    StackCatalog,
    cache_key,
    default_cache_dir,
    definition_key,
    parse_stacks,
    stack_definition,
    write_stack_files,
)
from yunzhou.build.truststore import jks_truststore, pem_certificates
from yunzhou.domain.errors import Conflict, PermanentError, UserError
from yunzhou.testing import polling

SOURCES = b"Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n"


def test_the_five_stacks_are_defined_with_a_non_root_user_and_labels() -> None:
    assert list(STACKS) == ["python", "node", "java", "tomcat", "static"]
    for d in STACKS.values():
        assert d.user == "10001:10001"
        assert d.uid_gid == (10001, 10001)
        assert d.user_name == "app"
        assert d.workdir == "/app"
        assert d.entrypoint == ("/usr/local/bin/yunzhou-start",)
        assert d.cmd
        assert d.packages
        assert d.suite == "bookworm"
        labels = d.image_config().labels
        assert labels["io.yunzhou.stack"] == f"{d.name}:{d.version}"
        assert labels["org.opencontainers.image.version"] == d.version
        assert labels["io.yunzhou.stack.definition"] == definition_key(d)
        assert d.tag == f"stacks/{d.name}:{d.version}"
    assert STACKS["python"].version == "3.11"
    assert "python3-venv" in STACKS["python"].packages
    assert STACKS["node"].version == "18"
    assert "npm" not in STACKS["node"].packages
    assert STACKS["java"].layout["jar"] == "/app/app.jar"
    assert STACKS["tomcat"].layout["war"] == "/app/app.war"


def test_npm_is_only_in_the_node_build_image() -> None:
    node = STACKS["node"]
    build = node.for_build()
    assert build.tag == "stacks/node:18-build"
    assert build.purpose == "build"
    assert "npm" in build.packages
    assert "npm" not in node.packages
    assert definition_key(build) != definition_key(node)
    assert build.for_build() is build


def test_start_scripts_read_port_at_run_time_and_the_entrypoint_checks_it() -> None:
    files = {f.path: f for d in STACKS.values() for f in d.files}
    start = files["/usr/local/bin/yunzhou-start"]
    assert start.mode == 0o755
    assert "*[!0-9]*" in (start.text or "")
    assert '-Dserver.port="$PORT"' in (files["/usr/local/lib/yunzhou/run-java"].text or "")
    assert "${yunzhou.port}" in (files["/etc/yunzhou/tomcat/conf/server.xml"].text or "")
    assert files["/etc/yunzhou/tomcat/work"].link == "/tmp/tomcat/work"
    nginx = files["/etc/yunzhou/nginx.conf"].text or ""
    assert "pid /tmp/nginx/nginx.pid" in nginx
    assert "access_log /dev/stdout" in nginx


def test_the_data_file_names_no_mirror() -> None:
    text = STACKS_FILE.read_text()
    assert "deb.debian.org" not in text
    assert "http://" not in text
    assert "https://" not in text


def test_cache_key_changes_with_the_definition_and_the_apt_sources() -> None:
    python = STACKS["python"]
    key = cache_key(python, SOURCES)
    assert key == cache_key(python, SOURCES)  # pure
    assert key != cache_key(python, SOURCES + b"# another snapshot\n")
    assert key != cache_key(replace(python, packages=(*python.packages, "curl")), SOURCES)
    assert key != cache_key(replace(python, cmd=("python3", "main.py")), SOURCES)
    assert key != cache_key(STACKS["node"], SOURCES)
    # the order packages are listed in does not matter
    assert key == cache_key(replace(python, packages=tuple(reversed(python.packages))), SOURCES)


def test_unknown_stack_names_the_supported_ones() -> None:
    with pytest.raises(UserError, match=r"unknown stack 'ruby'.*python, node, java, tomcat, static"):
        stack_definition("ruby")
    with pytest.raises(UserError, match=r"version 3\.11"):
        stack_definition("python", "2.7")


def test_catalog_refuses_an_unknown_stack_before_building(tmp_path: Path) -> None:
    catalog = StackCatalog(tmp_path / "cache", ImageStore(tmp_path / "store"), apt_sources=tmp_path / "x")
    with pytest.raises(UserError, match="supported stacks are python, node"):
        catalog.image("cobol")
    with pytest.raises(Conflict, match="not built here"):
        catalog.export(["python"], tmp_path / "out.tar")


def test_mmdebstrap_command_line_takes_the_mirror_from_the_sources_file() -> None:
    recipe = STACKS["static"].recipe
    argv = mmdebstrap_argv(recipe, Path("/tmp/out.tar"), Path("/etc/apt/sources.list.d/debian.sources"))
    assert argv[:5] == ["mmdebstrap", "--mode=root", "--variant=essential", "--format=tar", argv[4]]
    assert "--include=nginx" in argv
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in argv
    assert argv.index("--dpkgopt=path-include=/usr/share/doc/*/copyright") > argv.index(
        "--dpkgopt=path-exclude=/usr/share/doc/*"
    )
    assert argv[-3:] == ["bookworm", "/tmp/out.tar", "/etc/apt/sources.list.d/debian.sources"]
    env = mmdebstrap_env(recipe, {"PATH": "/usr/bin", "DEBIAN_FRONTEND": "x"})
    assert env["SOURCE_DATE_EPOCH"] == str(recipe.source_date_epoch)
    assert "DEBIAN_FRONTEND" not in env


def test_packages_are_sorted_on_the_command_line() -> None:
    recipe = RootfsRecipe("bookworm", "essential", ("python3", "ca-certificates"), 0)
    assert "--include=ca-certificates,python3" in mmdebstrap_argv(recipe, Path("o"), Path("s"))


def test_apt_sources_come_from_the_setting_then_the_host(tmp_path: Path) -> None:
    empty = tmp_path / "sources.list"
    empty.write_text("# nothing\n\n")
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(SOURCES.decode())
    assert find_apt_sources({}, [tmp_path / "missing", empty]) is None
    assert find_apt_sources({}, [empty, deb822]) == deb822
    assert find_apt_sources({APT_SOURCES_ENV: str(empty)}, [deb822]) == empty
    with pytest.raises(UserError, match=APT_SOURCES_ENV):
        find_apt_sources({APT_SOURCES_ENV: str(tmp_path / "nope")}, [deb822])


def test_cache_dir_setting(tmp_path: Path) -> None:
    assert default_cache_dir({"YUNZHOU_STACK_CACHE": str(tmp_path)}) == tmp_path
    assert default_cache_dir({}).parts[-3:] == (".cache", "yunzhou", "stacks")
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "yunzhou/stacks"


def _rootfs_tar(path: Path, more: dict[str, str] | None = None) -> None:
    files = {"./etc/group": "root:x:0:\n", "./etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", **(more or {})}
    with tarfile.open(path, "w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))


def test_the_stacks_own_layer_adds_the_app_user_and_files(tmp_path: Path) -> None:
    _rootfs_tar(tmp_path / "rootfs.tar", {"./etc/ssl/certs/ca-certificates.crt": ""})
    write_stack_files(STACKS["tomcat"], tmp_path / "rootfs.tar", tmp_path / "layer")
    layer = tmp_path / "layer"
    assert (layer / "etc/passwd").read_text().splitlines() == [
        "root:x:0:0:root:/root:/bin/sh",
        "app:x:10001:10001:Yunzhou app:/app:/usr/sbin/nologin",
    ]
    assert (layer / "etc/group").read_text().splitlines()[-1] == "app:x:10001:"
    assert (layer / "app").is_dir()
    assert (layer / "app").stat().st_mode & 0o777 == 0o755
    assert (layer / "usr/local/bin/yunzhou-start").stat().st_mode & 0o777 == 0o755
    assert (layer / "etc/yunzhou/tomcat/logs").readlink() == Path("/tmp/tomcat/logs")
    assert (layer / "usr/local/lib").stat().st_mode & 0o777 == 0o755


def test_a_mistake_in_the_data_names_its_place() -> None:
    doc = tomllib.loads(STACKS_FILE.read_text())
    doc["stacks"]["python"]["packages"] = "python3"
    with pytest.raises(ValueError, match=r"stacks\.python\.packages"):
        parse_stacks(doc)
    doc = tomllib.loads(STACKS_FILE.read_text())
    doc["stacks"]["static"]["files"]["/etc/../x"] = {"text": "x"}
    with pytest.raises(ValueError, match="plain absolute path"):
        parse_stacks(doc)


def _read_jks(data: bytes) -> list[tuple[str, bytes]]:
    """Parse a JKS keystore of trusted certificates the way Java does, checking its SHA-1."""
    body, digest = data[:-20], data[-20:]
    keyed = b"".join(struct.pack(">H", ord(c)) for c in "changeit") + b"Mighty Aphrodite"
    assert hashlib.sha1(keyed + body, usedforsecurity=False).digest() == digest
    magic, version, count = struct.unpack_from(">III", body)
    assert (magic, version) == (0xFEEDFEED, 2)
    at, entries = 12, []
    for _ in range(count):
        (tag,) = struct.unpack_from(">I", body, at)
        assert tag == 2  # trusted certificate
        (n,) = struct.unpack_from(">H", body, at + 4)
        alias = body[at + 6 : at + 6 + n].decode()
        at += 6 + n + 8
        (n,) = struct.unpack_from(">H", body, at)
        assert body[at + 2 : at + 2 + n] == b"X.509"
        at += 2 + n
        (n,) = struct.unpack_from(">I", body, at)
        entries.append((alias, body[at + 4 : at + 4 + n]))
        at += 4 + n
    assert at == len(body)
    return entries


def test_java_trust_store_is_the_same_bytes_for_the_same_certificates() -> None:
    bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    certificates = pem_certificates(bundle)
    assert len(certificates) > 100
    store = jks_truststore(certificates, 1704067200_000)
    assert store == jks_truststore(list(reversed(certificates)), 1704067200_000)
    entries = _read_jks(store)
    assert sorted(der for _, der in entries) == sorted(certificates)
    assert all(alias.startswith("yunzhou:") for alias, _ in entries)


def test_java_stacks_get_a_reproducible_trust_store(tmp_path: Path) -> None:
    assert STACKS["java"].java_truststore
    assert STACKS["tomcat"].java_truststore
    assert not STACKS["python"].java_truststore
    pem = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    tar_path = tmp_path / "rootfs.tar"
    _rootfs_tar(tar_path, {"./etc/ssl/certs/ca-certificates.crt": pem.decode()})
    write_stack_files(STACKS["java"], tar_path, tmp_path / "layer")
    cacerts = tmp_path / "layer/etc/ssl/certs/java/cacerts"
    assert len(_read_jks(cacerts.read_bytes())) == len(pem_certificates(pem))
    assert cacerts.stat().st_mode & 0o777 == 0o644


def test_java_stacks_remove_the_unreproducible_trust_store_from_the_debian_layer() -> None:
    java = mmdebstrap_argv(STACKS["java"].recipe, Path("o"), Path("s"))
    assert '--customize-hook=rm -f -- "$1"/etc/ssl/certs/java/cacerts' in java
    python = mmdebstrap_argv(STACKS["python"].recipe, Path("o"), Path("s"))
    assert not [a for a in python if a.startswith("--customize-hook")]
    bad = RootfsRecipe("bookworm", "essential", ("x",), 0, remove=('/etc/x"; rm -rf / #',))
    with pytest.raises(ValueError, match="plain absolute path"):
        mmdebstrap_argv(bad, Path("o"), Path("s"))


def test_an_app_build_waiting_for_another_build_of_its_stack_stops_when_cancelled(tmp_path: Path) -> None:
    # a stack build takes minutes: a cancelled app build must not wait for it to finish
    catalog = StackCatalog(tmp_path / "cache", ImageStore(tmp_path / "store"), apt_sources=tmp_path / "x")
    key = definition_key(catalog.definition("python"))
    (tmp_path / "cache" / "locks").mkdir(parents=True)
    steps: list[str] = []
    cancel = threading.Event()
    outcome: list[BaseException] = []

    def app_build() -> None:
        try:
            catalog.image("python", progress=lambda step, f: steps.append(step), cancel=cancel)
        except BaseException as exc:  # the outcome is what the test reads
            outcome.append(exc)

    with open(tmp_path / "cache" / "locks" / f"{key}.lock", "w") as held:  # another build of the stack
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(target=app_build)
        waiter.start()
        polling.wait_until(
            "the build to wait", lambda: steps == ["waiting for another build of this stack"], 10
        )
        assert waiter.is_alive()
        cancel.set()
        waiter.join(timeout=5)
        assert not waiter.is_alive()
    [error] = outcome
    assert isinstance(error, PermanentError)
    assert "stopped while waiting for another build of the stack" in str(error)
