"""What an uploaded kubeconfig may hold. The control plane connects with it on its own host, so nothing
in it may make that host run a command or read a file: credentials travel inline (``token``,
``*-data``), as ``kubectl config view --flatten --minify`` (and ``yunzhou cluster add``) writes them.

Refused, each with its field path and what to use instead:
- ``users[i].user.exec`` (a credential plugin is a command run on the host) — unless the operator turned
  exec plugins on (``YUNZHOU_KUBECONFIG_EXEC``); ``auth-provider`` (plugins that read and write files);
- every file reference: ``tokenFile``, ``client-certificate``, ``client-key``,
  ``certificate-authority``, and any other key ending in ``file`` or ``path`` (any case or separator),
  in users and clusters;
- fields the client would silently ignore although they change how or as whom it connects:
  ``proxy-url`` (it would connect directly) and impersonation (``as``, ``as-uid``, ``as-groups``,
  ``as-user-extra``: it would act with the full credentials).
"""

from __future__ import annotations

from typing import Any

from yunzhou.domain.errors import FieldProblem, UserError

EXEC_SETTING = "YUNZHOU_KUBECONFIG_EXEC"

_INLINE = {
    "tokenFile": "put the token itself in `token`",
    "client-certificate": "put the certificate in `client-certificate-data` (base64 of the PEM file)",
    "client-key": "put the key in `client-key-data` (base64 of the PEM file)",
    "certificate-authority": "put the CA in `certificate-authority-data` (base64 of the PEM file)",
}
_HOST_ONLY = (
    "names a file on the control plane's host, which would read it and send what it holds to the server; "
)
_FLATTEN = "`yunzhou cluster add` and `kubectl config view --flatten --minify` inline files for you"
_IMPERSONATION = ("as", "as-uid", "as-groups", "as-user-extra")


def _is_file_key(key: str) -> bool:
    lowered = key.lower()
    return lowered.endswith(("file", "path"))  # tokenFile, ca-file, key_path, passwordPath, …


def _entry_problems(key: str, path: str, *, allow_exec: bool, section: str) -> list[FieldProblem]:
    where = f"{path}.{key}"
    if key in _INLINE or _is_file_key(key):
        instead = _INLINE.get(key, "inline the file's content in the matching `*-data` field")
        return [FieldProblem(where, f"{_HOST_ONLY}{instead} ({_FLATTEN})")]
    if section == "user" and key == "exec" and not allow_exec:
        return [
            FieldProblem(
                where,
                "exec credential plugins run a command on the control plane's host; put a token "
                "(`token`, e.g. a ServiceAccount's) or a client certificate (`client-certificate-data`, "
                f"`client-key-data`) inline instead, or ask the operator to set {EXEC_SETTING}=1",
            )
        ]
    if section == "user" and key == "auth-provider":
        return [
            FieldProblem(
                where,
                "auth-provider plugins are not supported (they read and write files on the host); put a "
                "token (`token`) or a client certificate (`client-certificate-data`, `client-key-data`) "
                "inline instead",
            )
        ]
    if section == "user" and key in _IMPERSONATION:
        return [
            FieldProblem(
                where,
                "impersonation is not supported: the connection would act with the full credentials; "
                "use credentials of the identity you mean (e.g. a ServiceAccount token)",
            )
        ]
    if section == "cluster" and key == "proxy-url":
        return [
            FieldProblem(
                where,
                "proxies are not supported: Yunzhou connects to `server` directly; remove proxy-url or "
                "give a server address the control plane can reach",
            )
        ]
    return []


def kubeconfig_problems(doc: object, *, allow_exec: bool = False) -> list[FieldProblem]:
    """Every reason ``doc`` may not be used by the control plane, with its path under ``kubeconfig``."""
    if not isinstance(doc, dict):
        return [
            FieldProblem(
                "kubeconfig", "must be a kubeconfig document (a mapping with clusters, users, contexts)"
            )
        ]
    problems: list[FieldProblem] = []
    for key in ("clusters", "users", "contexts"):
        if not isinstance(doc.get(key), list) or not doc[key]:
            problems.append(FieldProblem(f"kubeconfig.{key}", "must be a non-empty list"))
    for key, section in (("users", "user"), ("clusters", "cluster")):
        items: Any = doc.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            path = f"kubeconfig.{key}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                problems.append(FieldProblem(path, f"must be a mapping with a name and a {section}"))
                continue
            body = item.get(section) or {}
            if not isinstance(body, dict):
                problems.append(FieldProblem(f"{path}.{section}", "must be a mapping"))
                continue
            for field in body:
                problems += _entry_problems(
                    str(field), f"{path}.{section}", allow_exec=allow_exec, section=section
                )
    return problems


def check_kubeconfig(doc: object, *, allow_exec: bool = False) -> dict[str, Any]:
    """``doc`` when the control plane may connect with it; else a UserError listing every problem."""
    problems = kubeconfig_problems(doc, allow_exec=allow_exec)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{first}{more}", problems=problems)
    assert isinstance(doc, dict)
    return doc
