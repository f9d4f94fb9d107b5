"""Names and TLS material (issue 19): DNS providers behind one interface (``names.dns``), and the
certificates routes are served with. A library: settings come in, records and certificates go out; it
knows nothing of the store, use-cases, API, reconcilers or runtimes (import-linter contract)."""
