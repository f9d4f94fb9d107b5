"""Certificates the platform makes itself: a local CA for internal names (``local_ca``)."""
