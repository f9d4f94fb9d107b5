"""Helpers for the container-instance tests: a tiny image made in the test from Debian's static busybox
(package ``busybox-static``), put into a server's image store before it starts, and a Score running it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from yunzhou.build.oci import ImageConfig, ImageStore

BUSYBOX = Path("/bin/busybox")

# The app: writes its version and instance name into a web root on its writable /tmp and serves it with
# busybox httpd on $PORT; /cgi-bin/call?URL fetches URL (with the app's caller token) and says how it went;
# CRASH=1 prints to stderr and exits 3; HOG=1 allocates memory until the OOM killer ends it.
SERVE = r"""#!/bin/sh
if [ "$CRASH" = 1 ]; then echo "boom: the database is gone" >&2; exit 3; fi
if [ "$HOG" = 1 ]; then echo "hogging" >&2; exec tail /dev/zero; fi
[ -d /data ] && echo "start $(hostname)" >> /data/starts
mkdir -p /tmp/www/cgi-bin
echo "$APP_VERSION $(hostname)" > /tmp/www/index.html
echo ok > /tmp/www/healthz
cp /app/call /app/look /tmp/www/cgi-bin/
echo "listening on $PORT version $APP_VERSION"
exec httpd -f -v -p "$PORT" -h /tmp/www
"""
CALL = r"""#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
url="$QUERY_STRING"
hostport=$(echo "$url" | sed 's|^http://\([^/]*\).*|\1|')
name=${hostport%:*}
# the name as the instance's /etc/hosts has it (static busybox cannot use glibc's resolver); busybox 1.35's
# wget -T crashes, so timeout(1) bounds the call
ip=$(awk -v n="$name" '$2 == n {print $1; exit}' /etc/hosts)
[ -n "$ip" ] && url=$(echo "$url" | sed "s|//$name|//$ip|")
if out=$(timeout 5 wget -O - --header "Host: $hostport" \
    --header "x-yunzhou-caller-token: $YUNZHOU_CALLER_TOKEN" "$url" 2>/tmp/err)
then echo "CALL-OK $out"
else echo "CALL-FAILED $(cat /tmp/err) $out"
fi
"""
# What an instance can see of the machine: reads a path, lists /proc
LOOK = r"""#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
case "$QUERY_STRING" in
  proc) ls /proc ;;
  *) cat "$QUERY_STRING" 2>&1 || echo "READ-FAILED" ;;
esac
"""


def busybox_tree(root: Path) -> Path:
    """An image tree: /bin with busybox and its applets, the app's scripts under /app, empty mount points."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "dev", "sys", "etc", "app"):
        (root / d).mkdir()
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    for name, text in (("serve", SERVE), ("call", CALL), ("look", LOOK)):
        (root / "app" / name).write_text(text)
        (root / "app" / name).chmod(0o755)
    return root


def busybox_image(data_dir: Path, work: Path, repository: str = "shop/web") -> str:
    """The app's image in ``<data dir>/images`` (the server's store); returns ``repository@sha256:…``."""
    store = ImageStore(data_dir / "images")
    layer = store.add_layer_from_dir(busybox_tree(work / "image-tree"))
    config = ImageConfig(entrypoint=("/bin/sh",), cmd=("/app/serve",), env={"PATH": "/bin"}, workdir="/app")
    ref = store.write_image(config, [layer])
    return f"{repository}@{ref.digest}"


def image_score(name: str, image: str, version: str = "v1", **variables: str) -> dict[str, Any]:
    """A Score running ``image`` with no command (the image's entrypoint and cmd) and a readiness probe."""
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {
            "web": {
                "image": image,
                "variables": {"APP_VERSION": version, **variables},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            }
        },
    }
