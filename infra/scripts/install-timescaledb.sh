#!/usr/bin/env bash
# Installs TimescaleDB (Apache-2 build) into this machine's PostgreSQL from Debian's own source package and
# loads it. Idempotent: a second run only checks. Debian 12 ships no binary package, so the source package
# is fetched through a private apt list (never added to the system's sources, which would upgrade libc).
#   PG_VERSION   PostgreSQL major version (default: the first cluster in /etc/postgresql)
#   PGHOST/PGPORT/PGUSER  where to CREATE EXTENSION (default 127.0.0.1:5432 as postgres, database test)
set -euo pipefail
PG_VERSION="${PG_VERSION:-$(ls /etc/postgresql | sort -V | head -1)}"
PG_CONFIG="/usr/lib/postgresql/${PG_VERSION}/bin/pg_config"
PSQL=(psql -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}" -d "${PGDATABASE:-test}" -XAtq)
WORK="${TIMESCALEDB_BUILD_DIR:-/var/tmp/tradegraph-timescaledb}"

if [ ! -f "$("$PG_CONFIG" --pkglibdir 2>/dev/null)/timescaledb.so" ]; then
  echo "timescaledb: building from Debian's source package for PostgreSQL ${PG_VERSION}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "postgresql-server-dev-${PG_VERSION}" cmake dpkg-dev >/dev/null
  mkdir -p "$WORK/lists/partial" "$WORK/etc"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    >"$WORK/etc/sources.list"
  APT=(-o "Dir::Etc::sourcelist=$WORK/etc/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$WORK/lists")
  apt-get "${APT[@]}" update -qq
  (cd "$WORK" && rm -rf src build ./*.dsc ./*.tar.* && apt-get "${APT[@]}" source --download-only -qq timescaledb \
    && dpkg-source -x ./timescaledb_*.dsc src >/dev/null)
  cmake -S "$WORK/src" -B "$WORK/build" -DPG_CONFIG="$PG_CONFIG" -DAPACHE_ONLY=1 -DUSE_TELEMETRY=OFF \
    -DSEND_TELEMETRY_DEFAULT=OFF -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF >/dev/null
  make -s -C "$WORK/build" -j"$(nproc)" >/dev/null
  make -s -C "$WORK/build" install >/dev/null
fi

if [[ "$("${PSQL[@]}" -c "SHOW shared_preload_libraries")" != *timescaledb* ]]; then
  echo "timescaledb: adding to shared_preload_libraries and restarting PostgreSQL ${PG_VERSION}"
  "${PSQL[@]}" -c "ALTER SYSTEM SET shared_preload_libraries = 'timescaledb'"
  pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main restart
  for _ in $(seq 30); do pg_isready -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -q && break; sleep 1; done
fi
"${PSQL[@]}" -c "CREATE EXTENSION IF NOT EXISTS timescaledb" >/dev/null 2>&1 || "${PSQL[@]}" -c "CREATE EXTENSION IF NOT EXISTS timescaledb"
echo "timescaledb: $("${PSQL[@]}" -c "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'") loaded in ${PGDATABASE:-test}"
