"""The registry: an OCI Distribution client (``registry.client``) and the managed registry around it."""
