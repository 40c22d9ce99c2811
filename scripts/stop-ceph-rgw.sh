#!/usr/bin/env bash
# Stop the cluster scripts/start-ceph-rgw.sh started.
D=${CEPH_DIR:-/tmp/filetier-ceph}
for f in "$D"/run/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
pkill -f "radosgw -n client.rgw.a" 2>/dev/null || true
exit 0
