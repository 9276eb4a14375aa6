#!/usr/bin/env bash
# Installs (when missing) and starts the services the tests talk to, all on loopback:
#   PostgreSQL 15 (Debian's cluster), an S3 API (moto's server) and a Kafka-protocol broker (tansu).
# Idempotent: a service already answering is left alone. Prints the environment the tests read;
# `source scripts/services.sh` exports it.
set -euo pipefail

OB_STATE_DIR=${OB_STATE_DIR:-/tmp/observebridge-services}
mkdir -p "$OB_STATE_DIR"
PG_PORT=${OB_PG_PORT:-5432}
S3_PORT=${OB_S3_PORT:-5555}
KAFKA_PORT=${OB_KAFKA_PORT:-9092}

log() { printf '[services] %s\n' "$*" >&2; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local port=$1 name=$2 tries=${3:-120}
  for _ in $(seq "$tries"); do port_open "$port" && return 0; sleep 0.5; done
  log "$name did not open port $port"; return 1
}

# --- PostgreSQL -------------------------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /usr/lib/postgresql ]; then
  log "installing postgresql"; apt_install postgresql postgresql-client
fi
if ! port_open "$PG_PORT"; then
  ver=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q "^$ver main"; then pg_createcluster "$ver" main >&2; fi
  log "starting postgresql $ver"
  pg_ctlcluster "$ver" main start >&2
  wait_port "$PG_PORT" postgres
fi
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='observebridge'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE observebridge LOGIN SUPERUSER PASSWORD 'observebridge'\"" >&2
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='observebridge'\"" | grep -q 1 \
  || su postgres -c "createdb -O observebridge observebridge" >&2

# --- S3 (moto) --------------------------------------------------------------------------------
if ! port_open "$S3_PORT"; then
  if ! command -v moto_server >/dev/null 2>&1; then
    log "installing moto[server]"; python3 -m pip install -q 'moto[server]' >&2
  fi
  log "starting moto_server on $S3_PORT"
  nohup moto_server -H 127.0.0.1 -p "$S3_PORT" >"$OB_STATE_DIR/moto.log" 2>&1 &
  wait_port "$S3_PORT" moto
fi

# --- Kafka (tansu) ----------------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if ! port_open "$KAFKA_PORT"; then
  if ! command -v tansu >/dev/null 2>&1; then
    log "installing tansu from crates.io (about 9 minutes on 2 cores)"
    cargo install tansu --features dynostore --locked >&2
  fi
  log "starting tansu on $KAFKA_PORT"
  nohup tansu broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    >"$OB_STATE_DIR/tansu.log" 2>&1 &
  wait_port "$KAFKA_PORT" tansu
fi

export OBSERVEBRIDGE_TEST_PG_URL="postgres://observebridge:observebridge@127.0.0.1:$PG_PORT/observebridge"
export OBSERVEBRIDGE_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
export OBSERVEBRIDGE_TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing} AWS_REGION=${AWS_REGION:-us-east-1}
env | grep -E '^(OBSERVEBRIDGE_TEST_|AWS_)' | sed 's/^/export /'
