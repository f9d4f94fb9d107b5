"""Building images: the OCI image store (``build.oci``), stacks, source detection and the builder.

Import what you need from the modules (``from yunzhou.build.oci import ImageStore``); this package
imports nothing itself so that importing one part never pulls in the tools of another.
"""
