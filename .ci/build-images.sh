#!/usr/bin/env bash
# Build the two images the `containers` backend runs, and the base of the gate's own image, from Debian
# bookworm packages, without any image registry: debootstrap a minimal rootfs with the package, add an
# entrypoint that mimics the official image's interface, slim it, and `docker import` it.
#
#   relay-gate-local/redis:7       redis-server 7.0 (bookworm)   ~ official `redis:7`
#   relay-gate-local/postgres:15   PostgreSQL 15 (bookworm)      ~ official `postgres:16` (bookworm has no 16)
#   relay-gate-local/python:3.11   python3 3.11 + venv + CA certificates (bookworm): the base the
#                                  Dockerfile of the gate builds FROM (.ci/build-gate-image.sh)
#
# The tags say what is inside: bookworm ships Redis 7.0, PostgreSQL 15 and Python 3.11. An image that
# already exists is skipped unless FORCE=1. Needs root, a running Docker engine and debootstrap
# (apt-get install -y docker.io debootstrap; .ci/start-docker.sh).
#
#   bash .ci/build-images.sh              all three
#   bash .ci/build-images.sh python       only the ones named (redis, postgres, python)
#
# Environment:
#   FORCE=1                 rebuild images that exist
#   REDIS_TAG, PG_TAG, PYTHON_TAG   image names (defaults above)
#   DEBIAN_MIRROR           default http://deb.debian.org/debian
#   RELAY_GATE_DEB_CACHE    where downloaded .debs are kept between builds
#                           (default /var/cache/relay-gate/debootstrap)
set -euo pipefail

REDIS_TAG=${REDIS_TAG:-relay-gate-local/redis:7}
PG_TAG=${PG_TAG:-relay-gate-local/postgres:15}
PYTHON_TAG=${PYTHON_TAG:-relay-gate-local/python:3.11}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEB_CACHE=${RELAY_GATE_DEB_CACHE:-/var/cache/relay-gate/debootstrap}
FORCE=${FORCE:-0}

die() {
  echo "build-images: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap creates device nodes and chroots)"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install -y debootstrap"
command -v docker >/dev/null || die "docker is missing: apt-get install -y docker.io"
docker info >/dev/null 2>&1 || die "no Docker engine answers: run .ci/start-docker.sh first"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/relay-gate-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEB_CACHE"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

human_size() { numfmt --to=si --suffix=B "$(docker image inspect --format '{{.Size}}' "$1")"; }

# debootstrap ROOTFS PACKAGES: a minbase bookworm with PACKAGES (Depends only, no Recommends).
bootstrap() {
  local rootfs=$1 include=$2
  local log="$WORK/${rootfs##*/}.debootstrap.log"
  if ! debootstrap --variant=minbase --cache-dir="$DEB_CACHE" --include="$include" \
    "$SUITE" "$rootfs" "$MIRROR" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap of $include failed (log above)"
  fi
}

# Drop what a server container never reads. Debian's slim images exclude the same paths via dpkg.
slim() {
  local rootfs=$1
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/debootstrap
  # No service manager runs in the container: deny service starts should anyone apt-get in it.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
}

# import ROOTFS TAG --change ...: the rootfs as a single-layer image.
import_rootfs() {
  local rootfs=$1 tag=$2
  shift 2
  tar --numeric-owner -C "$rootfs" -c . | docker import "$@" - "$tag" >/dev/null
}

build_redis() {
  local rootfs=$WORK/redis
  bootstrap "$rootfs" redis-server
  slim "$rootfs"
  mkdir -p "$rootfs/data"
  chroot "$rootfs" chown redis:redis /data
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# relay-gate-local/redis entrypoint: the official image's interface. Arguments starting with "-" (or a
# .conf file) are redis-server arguments; redis-server runs as the redis user, never as root.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
exec "$@"
EOF
  chmod 755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  local version
  version=$(chroot "$rootfs" redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
  import_rootfs "$rootfs" "$REDIS_TAG" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["redis-server"]' \
    --change 'WORKDIR /data' \
    --change 'EXPOSE 6379' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV REDIS_VERSION=$version" \
    --change "LABEL org.opencontainers.image.title=relay-gate-local/redis org.opencontainers.image.version=$version org.opencontainers.image.description=\"redis-server $version from Debian $SUITE (built by .ci/build-images.sh)\""
}

build_postgres() {
  local rootfs=$WORK/postgres major=15
  bootstrap "$rootfs" "postgresql-$major"
  # JIT is the LLVM runtime (~150 MB of the image) and only speeds up analytic queries; test data never
  # needs it. With llvmjit.so gone the server turns JIT off by itself (jit_provider not found: DEBUG1).
  # --force-depends: postgresql-15 declares libllvm14, but the server binary does not link it.
  chroot "$rootfs" dpkg --purge --force-depends libllvm14 libz3-4 >>"$WORK/postgres.dpkg.log" 2>&1 ||
    die "could not remove libllvm14: $(tail -n 5 "$WORK/postgres.dpkg.log")"
  rm -rf "$rootfs/usr/lib/postgresql/$major/lib/llvmjit.so" \
    "$rootfs/usr/lib/postgresql/$major/lib/llvmjit_types.bc" \
    "$rootfs/usr/lib/postgresql/$major/lib/bitcode"
  # The package's own cluster (pg_createcluster ran in the postinst) is not used: data lives in $PGDATA.
  rm -rf "$rootfs/var/lib/postgresql/$major/main" "$rootfs/etc/postgresql/$major/main"
  slim "$rootfs"
  mkdir -p "$rootfs/var/lib/postgresql/data" "$rootfs/var/run/postgresql"
  chroot "$rootfs" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
  # `docker import` cannot set STOPSIGNAL (the official image's is SIGINT, a fast shutdown): a plain
  # `docker stop` here sends SIGTERM (smart shutdown). gate/stack/containers/backend.py passes stop_signal=SIGINT itself.
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# relay-gate-local/postgres entrypoint: the official postgres image's interface, minus initdb.d scripts.
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (postgres),
#   POSTGRES_DB ($POSTGRES_USER), POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (scram-sha-256),
#   PGDATA (/var/lib/postgresql/data), the port as `-p N` or PGPORT.
# Unlike the official image it listens on 127.0.0.1 by default: these containers run on the host network.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
if [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi
if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
	# PostgreSQL refuses to run as root: prepare the directories, then re-run this script as postgres.
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	chmod 3775 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	: "${POSTGRES_USER:=postgres}"
	: "${POSTGRES_DB:=$POSTGRES_USER}"
	auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != 'trust' ]; then
		echo 'Error: the database is uninitialized and POSTGRES_PASSWORD is not set.' >&2
		echo '       Set it (-e POSTGRES_PASSWORD=...), or POSTGRES_HOST_AUTH_METHOD=trust to allow all.' >&2
		exit 1
	fi
	pwfile=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	set -f # POSTGRES_INITDB_ARGS is split into words, never globbed
	# shellcheck disable=SC2086
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
		${POSTGRES_INITDB_ARGS:-} -D "$PGDATA"
	set +f
	rm -f "$pwfile"
	printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
	printf "listen_addresses = '127.0.0.1'\n" >>"$PGDATA/postgresql.conf"
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		db=$(printf '%s' "$POSTGRES_DB" | sed 's/"/""/g')
		echo "CREATE DATABASE \"$db\"" | postgres --single -D "$PGDATA" postgres >/dev/null
	fi
	echo 'PostgreSQL init process complete; ready for start up.'
fi
exec "$@"
EOF
  chmod 755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  local version
  version=$(chroot "$rootfs" "/usr/lib/postgresql/$major/bin/postgres" --version | awk '{print $3}')
  import_rootfs "$rootfs" "$PG_TAG" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]' \
    --change 'EXPOSE 5432' \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/lib/postgresql/$major/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PG_MAJOR=$major" \
    --change "ENV PG_VERSION=$version" \
    --change "LABEL org.opencontainers.image.title=relay-gate-local/postgres org.opencontainers.image.version=$version org.opencontainers.image.description=\"PostgreSQL $version from Debian $SUITE without JIT (built by .ci/build-images.sh)\""
}

build_python() {
  local rootfs=$WORK/python
  # python3-venv: `python3 -m venv` with pip (ensurepip's wheel); ca-certificates: the system trust store
  bootstrap "$rootfs" python3,python3-venv,ca-certificates
  slim "$rootfs"
  local version
  version=$(chroot "$rootfs" python3 -c 'import platform; print(platform.python_version())')
  import_rootfs "$rootfs" "$PYTHON_TAG" \
    --change 'CMD ["python3"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PYTHON_VERSION=$version" \
    --change "LABEL org.opencontainers.image.title=relay-gate-local/python org.opencontainers.image.version=$version org.opencontainers.image.description=\"Python $version with venv from Debian $SUITE (built by .ci/build-images.sh)\""
}

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(redis postgres python)
for name in "${wanted[@]}"; do
  case $name in
  redis | postgres | python) ;;
  *) die "unknown image $name: choose among redis, postgres, python" ;;
  esac
done

total_start=$SECONDS
for spec in "redis:$REDIS_TAG" "postgres:$PG_TAG" "python:$PYTHON_TAG"; do
  name=${spec%%:*}
  tag=${spec#*:}
  [[ " ${wanted[*]} " == *" $name "* ]] || continue
  if image_exists "$tag" && [ "$FORCE" != 1 ]; then
    echo "== $tag exists ($(human_size "$tag")); skipped (FORCE=1 rebuilds)"
    continue
  fi
  echo "== building $tag from Debian $SUITE packages"
  start=$SECONDS
  previous=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  "build_$name"
  rm -rf "${WORK:?}/$name"
  if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
    # The rebuilt tag moved on: drop the old image rather than leave it dangling (unless a container uses it).
    docker image rm "$previous" >/dev/null 2>&1 || true
  fi
  echo "== built $tag: $(human_size "$tag") in $((SECONDS - start)) s"
done
echo "== images ready in $((SECONDS - total_start)) s"
