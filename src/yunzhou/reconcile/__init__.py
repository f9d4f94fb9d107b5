"""Reconcilers: lease work from the store, drive a runtime, record status. See worker.py and apps.py."""

from yunzhou.reconcile.apps import KIND as APP_KIND
from yunzhou.reconcile.apps import AppController, Timing
from yunzhou.reconcile.worker import Outcome, Worker, backoff

__all__ = ["APP_KIND", "AppController", "Outcome", "Timing", "Worker", "backoff"]
