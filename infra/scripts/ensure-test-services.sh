#!/usr/bin/env bash
# Makes sure the services and system packages the integration tests use are here and running. Idempotent.
#   PostgreSQL 15 (started if stopped) with TimescaleDB (built by install-timescaledb.sh)
#   RabbitMQ (started if stopped)
#   victoria-metrics (Debian; the InfluxDB v2 write API the sink is tested against; tests start their own)
#   promtool (Debian's prometheus package; checks infra/prometheus/prometheus.yml; the server is not started)
#   chromium + chromium-driver (Debian; the web app's browser test)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v make >/dev/null || missing+=(make)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | head -1)" main start
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
"$here/install-timescaledb.sh"

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  for _ in $(seq 60); do rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 1; done
fi
rabbitmqctl -q await_startup >/dev/null
echo "services: PostgreSQL $(pg_isready -h 127.0.0.1 -p 5432), RabbitMQ up, victoria-metrics and promtool installed, $(chromium --version 2>/dev/null | head -1)"
