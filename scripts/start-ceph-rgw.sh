#!/usr/bin/env bash
# Start a single-node Ceph cluster (monitor + in-memory OSD + radosgw) on 127.0.0.1: a
# real S3 server for the test suite and benchmarks. Idempotent: if radosgw already
# answers on $RGW_PORT it does nothing. Installs the Debian packages when missing
# (about a minute), starts in about 15 s. Objects live in RAM (memstore): keep data small.
#
#   credentials: access key "testkey", secret "testsecret"; path-style; any region name
#   stop:        scripts/stop-ceph-rgw.sh  (kills the PIDs recorded in $D/pids)
set -euo pipefail
RGW_PORT=${RGW_PORT:-7480}
D=${CEPH_DIR:-/tmp/filetier-ceph}
if curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/"; then
  echo "rgw already answering on http://127.0.0.1:$RGW_PORT"
  exit 0
fi
if ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq radosgw ceph-mon ceph-osd ceph-mgr uuid-runtime curl >/dev/null
fi
# A previous cluster in $D may still be running half-started: stop it first.
# The daemons record themselves in $D/run/*.pid (the monitor daemonizes, so $D/pids may
# miss it).
if [ -f "$D/pids" ]; then xargs -r kill < "$D/pids" 2>/dev/null || true; fi
pkill -f -- "--pid-file $D/run/" 2>/dev/null || true
for _ in $(seq 1 30); do pgrep -f -- "--pid-file $D/run/" >/dev/null || break; sleep 1; done
pkill -9 -f -- "--pid-file $D/run/" 2>/dev/null || true
rm -rf "$D"; mkdir -p "$D"/{mon,osd0,run,log}
FSID=$(uuidgen)
# The monitor gets a port nobody holds, never Ceph's default 6789: a monitor of another
# cluster on 6789 (another tool's, or one whose pid file is gone) would otherwise make ours
# fail to bind, or hand our OSD to a cluster with another fsid.
MON_PORT=${CEPH_MON_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 3221225472
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
keyring = $D/keyring
ms bind ipv4 = true
ms bind ipv6 = false
[mon.a]
mon data = $D/mon
[osd.0]
osd data = $D/osd0
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw dns name = localhost
# Objects live in RAM: free deleted data within seconds, not the default two hours.
rgw gc obj min wait = 5
rgw gc processor period = 10
rgw gc processor max time = 10
CONF
export CEPH_CONF="$D/ceph.conf"
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --add a v1:127.0.0.1:$MON_PORT --fsid "$FSID" "$D/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
ceph-mon -i a --pid-file "$D/run/mon.pid"
# Fail here, clearly, if the monitor that answers is not the one just made.
if [ "$(timeout 30 ceph fsid 2>/dev/null)" != "$FSID" ]; then
  echo "start-ceph-rgw: the monitor on 127.0.0.1:$MON_PORT is not this cluster's (see $D/log/mon.a.log)" >&2
  exit 1
fi
OSD_UUID=$(uuidgen)
OSD_ID=$(ceph osd new "$OSD_UUID")
ceph-osd -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" 2>/dev/null
ceph-osd -i "$OSD_ID" --pid-file "$D/run/osd.pid"
for _ in $(seq 1 60); do ceph osd stat 2>/dev/null | grep -q '1 up' && break; sleep 1; done
radosgw -n client.rgw.a --pid-file "$D/run/rgw.pid"
for _ in $(seq 1 90); do curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" && break; sleep 1; done
radosgw-admin user create --uid=test --display-name=test --access-key=testkey --secret-key=testsecret >/dev/null
sleep 1
cat "$D"/run/*.pid > "$D/pids" 2>/dev/null || true
echo "rgw ready on http://127.0.0.1:$RGW_PORT (testkey/testsecret)"
