#!/usr/bin/env bash
# Build the gate's own container image from its wheel, without any image registry:
#
#   relay-gate-local/gate:<version> (and :latest)   FROM relay-gate-local/python:3.11 (.ci/build-images.sh)
#
# 1. the wheel: `pip wheel --no-deps .` (or WHEEL=path, a wheel CI built already);
# 2. its dependencies as wheels, at the versions of constraints.txt, from the package index pip is set up
#    with; 3. `docker build --network none` of the Dockerfile on a context of just those wheels and
# constraints.txt: the image installs offline, from the wheel, pinned.
#
# Needs a running Docker engine (.ci/start-docker.sh) and the base image (.ci/build-images.sh python).
#
# Environment:
#   WHEEL          the gate's wheel to install (default: build one from this checkout)
#   GATE_TAG       image name (default relay-gate-local/gate:<version>; :latest is tagged too)
#   BASE_IMAGE     default relay-gate-local/python:3.11
#   PYTHON         the interpreter whose pip builds and downloads the wheels (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
BASE_IMAGE=${BASE_IMAGE:-relay-gate-local/python:3.11}

die() {
  echo "build-gate-image: $*" >&2
  exit 1
}

command -v docker >/dev/null || die "docker is missing: apt-get install -y docker.io"
docker info >/dev/null 2>&1 || die "no Docker engine answers: run .ci/start-docker.sh first"
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 ||
  die "the base image $BASE_IMAGE is missing: run .ci/build-images.sh python"

# pip resolves environment markers for the interpreter it runs on, not the image's: a dependency only
# bookworm's Python 3.11.2 needs is named here, pinned (redis wants async-timeout below 3.11.3)
IMAGE_ONLY=(async-timeout==5.0.1)

CONTEXT=$(mktemp -d "${TMPDIR:-/tmp}/relay-gate-image.XXXXXX")
LOG=$(mktemp "${TMPDIR:-/tmp}/relay-gate-image-pip.XXXXXX.log")
trap 'rm -rf "$CONTEXT" "$LOG"' EXIT
mkdir -p "$CONTEXT/wheels"
started=$SECONDS

pip_wheel() {
  if ! "$PYTHON" -m pip wheel --disable-pip-version-check "$@" >"$LOG" 2>&1; then
    grep -v "^WARNING: Location " "$LOG" | tail -n 20 >&2
    return 1
  fi
}

if [ -n "${WHEEL:-}" ]; then
  [ -f "$WHEEL" ] || die "WHEEL=$WHEEL is not a file"
  cp "$WHEEL" "$CONTEXT/wheels/"
else
  echo "== the gate's wheel"
  pip_wheel --no-deps -w "$CONTEXT/wheels" . || die "pip wheel of the checkout failed"
fi
wheel=$(ls "$CONTEXT"/wheels/relay_gate-*.whl)
version=$(basename "$wheel" | cut -d- -f2)
GATE_TAG=${GATE_TAG:-relay-gate-local/gate:$version}

echo "== its dependencies as wheels (constraints.txt)"
pip_wheel -c constraints.txt -w "$CONTEXT/wheels" "$wheel" "${IMAGE_ONLY[@]}" ||
  die "could not fetch the dependencies' wheels"
cp constraints.txt "$CONTEXT/"

echo "== docker build $GATE_TAG FROM $BASE_IMAGE ($(du -sh "$CONTEXT" | cut -f1) context, no network)"
previous=$(docker image inspect --format '{{.Id}}' "$GATE_TAG" 2>/dev/null || true)
# the classic builder: Debian's docker.io has no buildx, and this build needs nothing BuildKit adds;
# --force-rm: a failed step leaves no container (nor the image under it) behind
if ! DOCKER_BUILDKIT=0 docker build --force-rm --network none --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  -f Dockerfile -t "$GATE_TAG" -t "${GATE_TAG%:*}:latest" "$CONTEXT" >"$LOG" 2>&1; then
  tail -n 30 "$LOG" >&2
  die "docker build failed (its last lines above)"
fi
docker run --rm --network none "$GATE_TAG" relay-gate --version >/dev/null ||
  die "the image does not run relay-gate --version"
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$GATE_TAG")" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true # the rebuilt tag moved on: no dangling old image
fi
echo "== built $GATE_TAG: $(docker image inspect --format '{{.Size}}' "$GATE_TAG" | numfmt --to=si --suffix=B) in $((SECONDS - started)) s"
