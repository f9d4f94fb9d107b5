"""Stack definitions: ``stacks.toml`` (next to this module) read into ``StackDefinition`` values, and the
keys that say whether a built image still matches its definition. Pure: no tools, no image store.
``build.stacks`` (the catalog that builds and serves the images) re-exports what is public here."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Literal

from yunzhou.build.debian import RootfsRecipe
from yunzhou.build.oci import ImageConfig
from yunzhou.domain.errors import UserError

STACKS_FILE = Path(__file__).with_name("stacks.toml")
#: bump when the way a stack is built changes (not its data): cached images of older recipes are not reused
RECIPE_VERSION = 1
CACHE_ENV = "YUNZHOU_STACK_CACHE"
TAG_PREFIX = "stacks/"
BUILD_SUFFIX = "-build"
LABEL_STACK = "io.yunzhou.stack"
LABEL_DEFINITION = "io.yunzhou.stack.definition"
LABEL_PURPOSE = "io.yunzhou.stack.purpose"
JAVA_CACERTS = "/etc/ssl/certs/java/cacerts"

Purpose = Literal["run", "build"]


@dataclass(frozen=True)
class StackFile:
    """A file of the stack's own layer: text with a mode, or a symbolic link."""

    path: str
    mode: int = 0o644
    text: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class StackDefinition:
    name: str
    version: str
    description: str
    packages: tuple[str, ...]
    cmd: tuple[str, ...]
    entrypoint: tuple[str, ...]
    env: Mapping[str, str]
    user: str
    user_name: str
    workdir: str
    suite: str
    variant: str
    source_date_epoch: int
    path_exclude: tuple[str, ...] = ()
    path_include: tuple[str, ...] = ()
    build_packages: tuple[str, ...] = ()
    layout: Mapping[str, str] = field(default_factory=dict)
    files: tuple[StackFile, ...] = ()
    # ca-certificates-java's PKCS#12 cacerts (random salt) → a reproducible JKS (build/truststore.py)
    java_truststore: bool = False
    purpose: Purpose = "run"

    @property
    def tag(self) -> str:
        """``stacks/python:3.11``; a build image is ``stacks/node:18-build``."""
        suffix = BUILD_SUFFIX if self.purpose == "build" else ""
        return f"{TAG_PREFIX}{self.name}:{self.version}{suffix}"

    @property
    def uid_gid(self) -> tuple[int, int]:
        uid, _, gid = self.user.partition(":")
        return int(uid), int(gid or uid)

    @property
    def recipe(self) -> RootfsRecipe:
        return RootfsRecipe(
            suite=self.suite,
            variant=self.variant,
            packages=self.packages,
            source_date_epoch=self.source_date_epoch,
            path_exclude=self.path_exclude,
            path_include=self.path_include,
            remove=(JAVA_CACERTS,) if self.java_truststore else (),
        )

    def for_build(self) -> StackDefinition:
        """The image the builder installs dependencies with: the stack plus its build packages."""
        if self.purpose == "build":
            return self
        return replace(self, packages=self.packages + self.build_packages, build_packages=(), purpose="build")

    def document(self) -> dict[str, Any]:
        """Everything that goes into the image, as plain data: what the cache key hashes."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "purpose": self.purpose,
            "rootfs": {
                "suite": self.suite,
                "variant": self.variant,
                "packages": sorted(self.packages),
                "source_date_epoch": self.source_date_epoch,
                "path_exclude": list(self.path_exclude),
                "path_include": list(self.path_include),
                # only when there is something to remove: other stacks keep their keys (and caches)
                **({"remove": list(self.recipe.remove)} if self.recipe.remove else {}),
            },
            "build_packages": sorted(self.build_packages),
            "entrypoint": list(self.entrypoint),
            "cmd": list(self.cmd),
            "env": dict(sorted(self.env.items())),
            "user": self.user,
            "user_name": self.user_name,
            "workdir": self.workdir,
            "layout": dict(sorted(self.layout.items())),
            "java_truststore": self.java_truststore,
            "files": [
                {"path": f.path, "mode": f.mode, "text": f.text, "link": f.link}
                for f in sorted(self.files, key=lambda f: f.path)
            ],
        }

    def image_config(self) -> ImageConfig:
        return ImageConfig(
            entrypoint=self.entrypoint,
            cmd=self.cmd,
            env=dict(self.env),
            user=self.user,
            workdir=self.workdir,
            labels={
                "org.opencontainers.image.title": f"yunzhou-stack-{self.name}",
                "org.opencontainers.image.version": self.version,
                "org.opencontainers.image.description": self.description,
                "org.opencontainers.image.vendor": "Yunzhou",
                "org.opencontainers.image.base.name": f"debian:{self.suite}",
                LABEL_STACK: f"{self.name}:{self.version}",
                LABEL_DEFINITION: definition_key(self),
                LABEL_PURPOSE: self.purpose,
            },
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def definition_key(definition: StackDefinition) -> str:
    """A hash of the definition and the recipe version: equal keys, equal images (given equal packages)."""
    doc = {"recipe": RECIPE_VERSION, "stack": definition.document()}
    return _sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


def cache_key(definition: StackDefinition, apt_sources: bytes) -> str:
    """The definition plus the apt sources file's content (another mirror or snapshot: another build)."""
    return _sha256(f"{definition_key(definition)}\n{_sha256(apt_sources)}".encode())


# --- the data file --------------------------------------------------------------------------------------


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: must be a list of non-empty strings")
    return tuple(value)


def _string_map(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{where}: must be a table of strings")
    return dict(value)


def _files(value: object, where: str) -> tuple[StackFile, ...]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a table of paths")
    out = []
    for path, spec in value.items():
        pure = PurePosixPath(path)
        if not pure.is_absolute() or ".." in pure.parts or str(pure) != path:
            raise ValueError(f"{where}.{path}: must be a plain absolute path")
        if not isinstance(spec, dict) or (("text" in spec) == ("link" in spec)):
            raise ValueError(f"{where}.{path}: give either text (and mode) or link")
        out.append(StackFile(path, int(spec.get("mode", 0o644)), spec.get("text"), spec.get("link")))
    return tuple(out)


def parse_stacks(doc: Mapping[str, Any]) -> dict[str, StackDefinition]:
    """``stacks.toml`` as definitions, checked (a mistake in the data names its place)."""
    d = doc.get("defaults", {})
    stacks: dict[str, StackDefinition] = {}
    for name, s in doc.get("stacks", {}).items():
        where = f"stacks.{name}"
        env = _string_map(d.get("env", {}), "defaults.env") | _string_map(s.get("env", {}), f"{where}.env")
        user = str(d["user"])
        if not all(part.isdigit() for part in user.split(":")):
            raise ValueError(f"defaults.user: {user!r} must be UID:GID")
        stacks[name] = StackDefinition(
            name=name,
            version=str(s["version"]),
            description=str(s.get("description", "")),
            packages=_strings(s["packages"], f"{where}.packages"),
            build_packages=_strings(s.get("build_packages", []), f"{where}.build_packages"),
            cmd=_strings(s["cmd"], f"{where}.cmd"),
            entrypoint=_strings(d["entrypoint"], "defaults.entrypoint"),
            env=MappingProxyType(env),
            user=user,
            user_name=str(d["user_name"]),
            workdir=str(d["workdir"]),
            suite=str(d["suite"]),
            variant=str(d["variant"]),
            source_date_epoch=int(d["source_date_epoch"]),
            path_exclude=_strings(d.get("dpkg_path_exclude", []), "defaults.dpkg_path_exclude"),
            path_include=_strings(d.get("dpkg_path_include", []), "defaults.dpkg_path_include"),
            layout=MappingProxyType(_string_map(s.get("layout", {}), f"{where}.layout")),
            files=_files(d.get("files", {}), "defaults.files") + _files(s.get("files", {}), f"{where}.files"),
            java_truststore=bool(s.get("java_truststore", False)),
        )
    return stacks


def load_stacks(path: Path = STACKS_FILE) -> dict[str, StackDefinition]:
    with open(path, "rb") as f:
        return parse_stacks(tomllib.load(f))


STACKS: Mapping[str, StackDefinition] = MappingProxyType(load_stacks())


def supported() -> str:
    return ", ".join(STACKS)


def stack_definition(
    name: str, version: str | None = None, stacks: Mapping[str, StackDefinition] = STACKS
) -> StackDefinition:
    """The definition called ``name`` (at ``version``, when given); UserError naming the supported ones."""
    definition = stacks.get(name)
    if definition is None:
        raise UserError(f"unknown stack {name!r}: the supported stacks are {', '.join(stacks)}")
    if version is not None and version != definition.version:
        raise UserError(
            f"stack {name} is at version {definition.version} in this Yunzhou (asked for {version!r})"
        )
    return definition


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    chosen = environ.get(CACHE_ENV, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    xdg = environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "yunzhou" / "stacks"
