"""Runtimes: one sub-package per target (local, kubernetes), same module names; see base.py."""
