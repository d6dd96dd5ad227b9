#!/usr/bin/env bash
# The stack's S3 server: Ceph RadosGW (Debian 12's Ceph 16.2, the same the tests prove Object
# Lock against) on a one-node cluster inside one container: a monitor, one BlueStore OSD on a
# file in $S3_DATA and the gateway over HTTPS. The first start creates the cluster and the S3
# user ($S3_ACCESS_KEY / $S3_SECRET_KEY) and the archive bucket with Object Lock ($S3_BUCKET);
# later starts reuse them. If any of the three daemons
# exits, the others are stopped and the script fails, so the container restarts.
# Everything comes from the environment (defaults are the container's), so a test runs this
# very script on loopback ports without Docker.
set -euo pipefail
data=${S3_DATA:-/var/lib/retirement-s3}
bind=${S3_BIND:-0.0.0.0}
https_port=${S3_HTTPS_PORT:-7480}
mon_port=${S3_MON_PORT:-3300}
local_port=${S3_LOCAL_PORT:-7481}   # plain HTTP on the container's own loopback, for this script
bucket=${S3_BUCKET:-retirement-archive}
cert=${S3_TLS_CERT:-/etc/retirement-s3/tls/s3.crt}
key=${S3_TLS_KEY:-/etc/retirement-s3/tls/s3.key}
osd_bytes=${S3_OSD_BYTES:-21474836480}
: "${S3_ACCESS_KEY:?S3_ACCESS_KEY must be set (make compose-env writes it to .env)}"
: "${S3_SECRET_KEY:?S3_SECRET_KEY must be set (make compose-env writes it to .env)}"
for file in "$cert" "$key"; do
  [ -f "$file" ] || { echo "missing TLS file $file (make compose-env writes it)" >&2; exit 1; }
done
conf=$data/ceph.conf
mkdir -p "$data"/{run,log,mon/ceph-a,osd/ceph-0,rgw}
rm -f "$data/ready"   # written once the bucket is there: the healthcheck reads it

if [ ! -f "$conf" ]; then
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $osd_bytes
run dir = $data/run
log file = $data/log/\$name.log
pid file = $data/run/\$name.pid
admin socket = $data/run/\$name.asok
mon data = $data/mon/\$cluster-\$id
osd data = $data/osd/\$cluster-\$id
keyring = $data/keyring
log to stderr = false
err to stderr = false
mon cluster log file = $data/log/cluster.log

[client.rgw.s3]
ms mon client mode = crc
ms client mode = crc
rgw data = $data/rgw
rgw frontends = beast endpoint=127.0.0.1:$local_port ssl_endpoint=$bind:$https_port ssl_certificate=$cert ssl_private_key=$key
rgw thread pool size = 64
CONF
  : >"$data/keyring"
  monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$data/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$data/monmap"
fi

pids=()
stop_all() { rm -f "$data/ready"; kill "${pids[@]}" 2>/dev/null || true; wait || true; }
trap 'stop_all; exit 0' TERM INT
trap stop_all EXIT
ceph-mon -f -c "$conf" -i a & pids+=($!)
if [ ! -f "$data/osd/ceph-0/whoami" ]; then
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph -c "$conf" --connect-timeout 60 osd new "$osd_uuid" >/dev/null
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid"
fi
ceph-osd -f -c "$conf" -i 0 & pids+=($!)
radosgw -f -c "$conf" -n client.rgw.s3 & pids+=($!)
if ! radosgw-admin -c "$conf" user info --uid retirement >/dev/null 2>&1; then
  radosgw-admin -c "$conf" user create --uid retirement --display-name "retirement stack" \
    --access-key "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" >/dev/null
fi
empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3() { # s3 METHOD PATH [curl options]: a signed request (no body) to the local endpoint
  curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" -H "x-amz-content-sha256: $empty_sha256" \
    -X "$1" "${@:3}" "http://127.0.0.1:$local_port$2"
}
for _ in $(seq 120); do
  code=$(s3 GET "/$bucket" 2>/dev/null || true)
  [ "$code" = 200 ] || [ "$code" = 404 ] && break
  sleep 1
done
if [ "$code" = 404 ]; then
  created=$(s3 PUT "/$bucket" -H "x-amz-bucket-object-lock-enabled: true")
  [ "$created" = 200 ] || { echo "creating bucket $bucket failed: HTTP $created" >&2; exit 1; }
elif [ "$code" != 200 ]; then
  echo "the gateway does not answer (HTTP $code)" >&2; exit 1
fi
touch "$data/ready"
echo "S3 (RadosGW) serving https://$bind:$https_port, bucket $bucket (Object Lock)"
wait -n "${pids[@]}"
echo "a Ceph daemon exited; stopping the others" >&2
exit 1
