"""hello-python: a Flask app that gunicorn serves; both come from PyPI (requirements.txt)."""

from importlib.metadata import version

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def hello() -> object:
    return jsonify(app="hello-python", message="hello from Flask", flask=version("flask"))


@app.get("/healthz")
def healthz() -> object:
    return jsonify(ok=True)
