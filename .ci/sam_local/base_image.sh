#!/usr/bin/env bash
# Makes public.ecr.aws/lambda/python:3.13-x86_64 available to `sam local invoke --skip-pull-image`:
#   1. an image already there (real or stand-in with the current recipe) is kept;
#   2. else the real one is pulled (a machine that reaches public.ecr.aws);
#   3. else an offline stand-in is built from image/: Debian trixie via debootstrap (python3.13, like the
#      template's Runtime) + awslambdaric and boto3 from PyPI (pinned), shaped like the real image, with pip
#      (as the real image has it) so that the functions' own Dockerfiles build on it.
# Usage: base_image.sh PYTHON (a Python 3.13 with pip, for `pip install --target` of the runtime packages)
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=public.ecr.aws/lambda/python:3.13-x86_64
SUITE=trixie  # Debian 13: python3.13
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
AWSLAMBDARIC=awslambdaric==4.2.2
PIP=pip==26.3
# boto3/botocore as the project pins them (constraints.txt), so the container runs what the tests run.
PIP_CONSTRAINTS=constraints.txt
PYTHON=${1:?usage: base_image.sh PYTHON}
HERE=.ci/sam_local/image
# The certificate authorities this machine trusts (an intercepting proxy's included): the stand-in's pip trusts the
# same ones, so `pip install` in the functions' Dockerfiles reaches PyPI wherever the host's pip does.
CA_BUNDLE=
for candidate in "${SSL_CERT_FILE:-}" "${PIP_CERT:-}" \
  "$("$PYTHON" -c 'import ssl; print(ssl.get_default_verify_paths().cafile or "")')"; do
  if [ -n "$candidate" ] && [ -s "$candidate" ]; then CA_BUNDLE=$candidate; break; fi
done
RECIPE=$(cat "$HERE"/* <(echo "$SUITE $AWSLAMBDARIC $PIP") <(grep -Ei '^(boto3|botocore|s3transfer)==' "$PIP_CONSTRAINTS") \
  ${CA_BUNDLE:+"$CA_BUNDLE"} | sha256sum | cut -c1-16)

current=missing
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  current=$(docker image inspect --format '{{ index .Config.Labels "org.example.sam-local-check.recipe" }}' "$IMAGE")
fi
if [ "$current" = "$RECIPE" ]; then
  echo "base image: $IMAGE (stand-in, cached)"; exit 0
elif [ "$current" != missing ] && [ "$current" != "<no value>" ] && [ -n "$current" ]; then
  echo "base image: stand-in recipe changed ($current -> $RECIPE), rebuilding"
elif [ "$current" != missing ]; then
  echo "base image: $IMAGE (real, already present)"; exit 0
elif timeout 300 docker pull --quiet "$IMAGE" >/dev/null 2>&1; then
  echo "base image: $IMAGE (real, pulled)"; exit 0
else
  echo "base image: cannot pull $IMAGE, building an offline stand-in"
fi

SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
WORK=$(mktemp -d /tmp/sam-local-image.XXXXXX)
trap '$SUDO rm -rf "$WORK"' EXIT
started=$SECONDS
# minbase: dpkg, apt and coreutils (sam local's generated Dockerfile runs mv, chmod and cp), plus python3.13 and
# the CA certificates (pip verifies PyPI with the system's trust store, as in the real image).
$SUDO debootstrap --variant=minbase --include=python3.13,ca-certificates "$SUITE" "$WORK/rootfs" "$MIRROR" \
  >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
if [ -n "$CA_BUNDLE" ]; then $SUDO cp "$CA_BUNDLE" "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"; fi
# The real image's pip installs into its own interpreter's site-packages: Debian marks its Python as managed by
# apt (PEP 668), which would refuse that.
$SUDO rm -f "$WORK"/rootfs/usr/lib/python3*/EXTERNALLY-MANAGED
# Where the real image keeps its interpreter (SAM CLI's debug entry points call /var/lang/bin/python3.13).
$SUDO mkdir -p "$WORK/rootfs/var/lang/bin" "$WORK/rootfs/var/task" "$WORK/rootfs/opt"
for name in python3.13 python3 python; do $SUDO ln -s /usr/bin/python3.13 "$WORK/rootfs/var/lang/bin/$name"; done
# Package caches and docs: about 130 MB nobody reads in a Lambda container.
$SUDO rm -rf "$WORK"/rootfs/var/cache/apt/* "$WORK"/rootfs/var/lib/apt/lists/* \
  "$WORK"/rootfs/usr/share/{doc,man,locale,info}
echo "  debootstrap $SUITE: $((SECONDS - started)) s"

started=$SECONDS
mkdir -p "$WORK/context"
$SUDO tar -C "$WORK/rootfs" -cf "$WORK/context/rootfs.tar" .
# Wheels for the container's interpreter (CPython 3.13, x86_64 glibc), whatever Python runs pip here.
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --target "$WORK/context/runtime" \
  --only-binary=:all: --implementation cp --python-version 3.13 --platform manylinux2014_x86_64 \
  --platform manylinux_2_28_x86_64 -c "$PIP_CONSTRAINTS" "$AWSLAMBDARIC" boto3
cp "$HERE/bootstrap" "$HERE/bootstrap.py" "$WORK/context/runtime/"
# pip's wheel: the image build installs pip with itself (no network), into the interpreter's site-packages.
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --dest "$WORK/context/pip" "$PIP"
cp "$HERE/lambda-entrypoint.sh" "$WORK/context/"
chmod 0755 "$WORK/context/runtime/bootstrap" "$WORK/context/lambda-entrypoint.sh"
# The classic builder: Debian's docker.io has no buildx, and nothing here needs BuildKit.
DOCKER_BUILDKIT=0 docker build --build-arg RECIPE="$RECIPE" -t "$IMAGE" -f "$HERE/Dockerfile" \
  "$WORK/context" >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log"; exit 1; }
echo "  image build: $((SECONDS - started)) s ($(docker image inspect --format '{{.Size}}' "$IMAGE" |
  awk '{printf "%.0f MB", $1 / 1e6}'))"
