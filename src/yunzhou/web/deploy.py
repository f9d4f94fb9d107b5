"""Visual deploy: a form (image, command, port, variables, replicas, readiness path, source) that shows
the Score + settings it will submit, or a pasted/uploaded Score file. API problems land on their field."""

from __future__ import annotations

import shlex
from typing import Any

import yaml
from fastapi import APIRouter, Response
from starlette.datastructures import FormData, UploadFile

from yunzhou.client import ApiError
from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.domain.score.text import load_yaml12
from yunzhou.web.context import ConsoleRoute, Ctx, Form, Json, PageCtx
from yunzhou.web.forms import DeployForm, FieldErrors, field_errors, to_yaml

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

FORM_FIELDS = ("name", "image", "command", "port", "variables", "replicas", "probe_path", "source")
SCORE_FIELDS = ("score", "settings", "source")
ENV_BASE = "/projects/{project}/{env}"
MAX_ARCHIVE = 200 * 1024 * 1024


def _render(
    ctx: Ctx, project: str, env: str, *, mode: str = "form", status: int = 200, **values: Any
) -> Response:
    defaults: Json = {
        "form": DeployForm(),
        "errors": FieldErrors(),
        "score_text": "",
        "settings_text": "",
        "preview": None,
    }
    defaults.update(values)
    if defaults["preview"] is None and mode == "form":
        defaults["preview"] = _preview(defaults["form"])
    return ctx.render(
        "deploy.html",
        status,
        project=project,
        env=env,
        mode=mode,
        may_write=ctx.may_write(project),
        **defaults,
    )


def _preview(form: DeployForm) -> str:
    score, settings, _ = form.build()
    return to_yaml({"score": score, "settings": settings})


@router.get(ENV_BASE + "/deploy")
def deploy_page(ctx: PageCtx, project: str, env: str, mode: str = "form", app: str = "") -> Response:
    ctx.require_session()
    form = DeployForm()
    if app:  # prefill from the app's current release: "update" is the same form
        form = _form_from_release(ctx, project, env, app)
    return _render(ctx, project, env, mode="score" if mode == "score" else "form", form=form)


def _form_from_release(ctx: Ctx, project: str, env: str, app: str) -> DeployForm:
    client = ctx.client()
    info = client.get_app(project, env, app)
    number = int(info.get("current_release") or info.get("desired_release") or 1)
    release = client.get_release(project, env, app, number)
    container: Json = next(iter((release.get("score") or {}).get("containers", {}).values()), {})
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    ports = ((release.get("score") or {}).get("service") or {}).get("ports") or {}
    first_port: Json = next(iter(ports.values()), {})
    port = first_port.get("targetPort") or probe.get("port") or ""
    return DeployForm(
        name=app,
        image=str(container.get("image") or ""),
        command=shlex.join(container.get("command") or []),
        port=str(port),
        variables="\n".join(f"{k}={v}" for k, v in (container.get("variables") or {}).items()),
        replicas=str(info.get("replicas") or 1),
        probe_path=str(probe.get("path") or ""),
        artifact=str(release.get("artifact") or ""),
    )


@router.post(ENV_BASE + "/deploy/preview")
def deploy_preview(ctx: PageCtx, form: Form, project: str, env: str) -> Response:
    """The Score + settings the form would submit (htmx swaps it in as the user types)."""
    ctx.require_session()
    return ctx.render("fragments/deploy_preview.html", preview=_preview(DeployForm.from_form(form)))


def _archive(form: FormData) -> bytes | None:
    upload = form.get("source_archive")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    data = upload.file.read(MAX_ARCHIVE + 1)
    return data or None


@router.post(ENV_BASE + "/deploy")
def deploy(ctx: PageCtx, form: Form, project: str, env: str) -> Response:
    ctx.require_session()
    mode = "score" if form.get("mode") == "score" else "form"
    values: Json = {}
    problems: list[FieldProblem] = []
    if mode == "form":
        deploy_form = DeployForm.from_form(form)
        score, settings, problems = deploy_form.build()
        artifact = deploy_form.artifact or None
        values["form"] = deploy_form
        known: tuple[str, ...] = FORM_FIELDS
    else:
        score_text, settings_text = _score_texts(form)
        values.update(score_text=score_text, settings_text=settings_text)
        score = _parse_yaml(score_text, "score", problems, required=True)
        settings = _parse_yaml(settings_text, "settings", problems, required=False)
        artifact = str(form.get("artifact") or "").strip() or None
        known = SCORE_FIELDS
    archive = _archive(form)
    if archive is not None and len(archive) > MAX_ARCHIVE:
        problems.append(FieldProblem("source", ctx.t("deploy.archive_too_big")))
    if problems:
        return _render(
            ctx, project, env, mode=mode, status=422, errors=field_errors(problems, known), **values
        )
    client = ctx.client()
    try:
        if archive is not None:
            artifact = client.upload_archive(archive)
        result = client.deploy(project, env, score, settings or None, artifact)
    except ApiError as exc:
        if exc.status != 422:
            raise
        errors = field_errors(exc.problems or [FieldProblem("", exc.message)], known)
        return _render(ctx, project, env, mode=mode, status=422, errors=errors, **values)
    app = result["app"]["name"]
    number = result["release"]["number"]
    return ctx.redirect(f"/projects/{project}/{env}/apps/{app}/overview?done=deploy&release={number}")


def _score_texts(form: FormData) -> tuple[str, str]:
    text = str(form.get("score") or "")
    upload = form.get("score_file")
    if isinstance(upload, UploadFile) and upload.filename:
        text = upload.file.read(1024 * 1024).decode("utf-8", errors="replace")
    return text, str(form.get("settings") or "")


def _parse_yaml(text: str, name: str, problems: list[FieldProblem], *, required: bool) -> Json:
    if not text.strip():
        if required:
            problems.append(FieldProblem(name, "required"))
        return {}
    try:
        document = load_yaml12(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problems.append(FieldProblem(name, where + str(exc.problem or "syntax error")))
        return {}
    except (yaml.YAMLError, ValueError, UserError) as exc:
        problems.append(FieldProblem(name, str(exc)))
        return {}
    if not isinstance(document, dict):
        problems.append(FieldProblem(name, "must be a mapping"))
        return {}
    return document
