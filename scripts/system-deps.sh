#!/usr/bin/env bash
# Make sure the system packages this project needs are there.
#   scripts/system-deps.sh demo   build deps of the Python packages (mysqlclient), Pango for
#                                 WeasyPrint (the dossier's PDF) and a CJK font for it
#   scripts/system-deps.sh test   plus the real test servers: OpenSSH sshd, age, Ceph RadosGW,
#                                 and Chromium for the UI page's browser test
# As root, missing Debian packages are installed with apt-get. Otherwise it says exactly
# what is missing and how to install it, and exits 1.
set -euo pipefail
mode=${1:-test}

need=()   # Debian packages missing
check() { # check <debian-package> <file-that-it-provides>
  [ -e "$2" ] || need+=("$1")
}
check pkg-config /usr/bin/pkg-config
check libmariadb-dev /usr/include/mariadb/mysql.h
check libpango-1.0-0 /usr/lib/x86_64-linux-gnu/libpango-1.0.so.0
check libpangoft2-1.0-0 /usr/lib/x86_64-linux-gnu/libpangoft2-1.0.so.0
check fonts-wqy-microhei /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
if [ "$mode" = test ]; then
  check openssh-server /usr/sbin/sshd
  check openssh-client /usr/bin/sftp
  check age /usr/bin/age
  check radosgw /usr/bin/radosgw
  check ceph-mon /usr/bin/ceph-mon
  check ceph-osd /usr/bin/ceph-osd
  check ceph-common /usr/bin/ceph
  check chromium /usr/bin/chromium
fi

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "Missing system packages: ${need[*]}" >&2
  echo "Install them with: sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
