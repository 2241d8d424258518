#!/usr/bin/env bash
# `make sam-local-check`: the container images (pipeline, explain) and the scoring zip function built as `sam build`
# builds them, and `sam local invoke` of every image handler and of the scoring function in Lambda-shaped containers.
#   1. installs Debian's docker.io and debootstrap if missing (apt-get, with sudo when not root);
#   2. starts a Docker daemon if none answers, and stops that one (by its PID) on exit, failure included;
#      a daemon that was already running (a developer's) is left alone;
#   3. makes the Lambda Python 3.13 base image available (base_image.sh: cached, pulled, or an offline stand-in);
#   4. check.py: docker build of the images, sam build, a pilot on moto for a real model, then the events and
#      their checked answers, the image sizes and each container's cold start.
# Usage: run.sh PYTHON SAM   (the project's venv Python and the SAM CLI, as the Makefile installs them)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${1:?usage: run.sh PYTHON SAM}
SAM=${2:?usage: run.sh PYTHON SAM}
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
started=$SECONDS

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  step=$SECONDS
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "apt-get install ${missing[*]}: $((SECONDS - step)) s"
fi

DOCKERD_PID=
DOCKERD_LOG=out/sam-local-check/dockerd.log
stop_dockerd() {
  [ -n "$DOCKERD_PID" ] || return 0
  $SUDO kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 60); do  # dockerd stops its containers and containerd first: give it up to 30 s
    $SUDO kill -0 "$DOCKERD_PID" 2>/dev/null || { echo "dockerd (PID $DOCKERD_PID) stopped"; return 0; }
    sleep 0.5
  done
  echo "dockerd (PID $DOCKERD_PID) still running after 30 s; killing it" >&2
  $SUDO kill -KILL "$DOCKERD_PID" 2>/dev/null || true
}
if docker info >/dev/null 2>&1; then
  echo "Docker daemon: already running, left as it is"
elif [ -n "$SUDO" ] && $SUDO docker info >/dev/null 2>&1; then
  echo "A Docker daemon runs but $(id -un) cannot reach it: join the docker group (sudo usermod -aG docker $(id -un))" >&2
  exit 1
else
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  trap stop_dockerd EXIT
  trap 'exit 130' INT TERM  # so that EXIT runs on Ctrl-C or a CI timeout too
  # The socket's group is the caller's, so docker and sam work without sudo; --pidfile records the daemon's own
  # PID (with sudo, $! would be sudo's).
  $SUDO dockerd --group "$(id -gn)" --pidfile /var/run/sam-local-check-dockerd.pid >"$DOCKERD_LOG" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  DOCKERD_PID=$($SUDO cat /var/run/sam-local-check-dockerd.pid 2>/dev/null || echo "$DOCKERD_PID")
  docker info >/dev/null 2>&1 || { tail -20 "$DOCKERD_LOG"; echo "dockerd did not start" >&2; exit 1; }
  echo "Docker daemon: started (PID $DOCKERD_PID, log $DOCKERD_LOG)"
fi

.ci/sam_local/base_image.sh "$PYTHON"
# sam build's Python builder needs the runtime's interpreter (python3.13) on PATH: the Makefile puts it there.
PYTHONPATH=local:layers/platform "$PYTHON" .ci/sam_local/check.py --sam "$SAM"
echo "sam-local-check: $((SECONDS - started)) s in all"
