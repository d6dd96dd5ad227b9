#!/usr/bin/env bash
# Make sure the system packages this project needs are there.
#   scripts/system-deps.sh demo   build deps of the Python packages (mysqlclient) and what the
#                                 pipeline runs with: Pango for WeasyPrint (the dossier's PDF),
#                                 a CJK font for it, age and zstd (to check a backup by hand),
#                                 the OpenSSH client, the MariaDB client library
#   scripts/system-deps.sh test   plus the real test servers: OpenSSH sshd, Ceph RadosGW,
#                                 and Chromium for the UI page's browser test
#   scripts/system-deps.sh list build|runtime|servers
#                                 print one list's Debian package names (the Dockerfile installs
#                                 the same build and runtime lists; a test compares them)
# As root, missing Debian packages are installed with apt-get. Otherwise it says exactly
# what is missing and how to install it, and exits 1.
set -euo pipefail
mode=${1:-test}
lib=/usr/lib/$(uname -m)-linux-gnu

# Each entry is <debian-package>:<a file that it provides>.
build=(
  build-essential:/usr/bin/gcc
  pkg-config:/usr/bin/pkg-config
  libmariadb-dev:/usr/include/mariadb/mysql.h
)
runtime=(
  libpango-1.0-0:$lib/libpango-1.0.so.0
  libpangoft2-1.0-0:$lib/libpangoft2-1.0.so.0
  fonts-wqy-microhei:/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
  libmariadb3:$lib/libmariadb.so.3
  age:/usr/bin/age
  zstd:/usr/bin/zstd
  openssh-client:/usr/bin/sftp
  postgresql-client:/usr/bin/psql
)
servers=(
  openssh-server:/usr/sbin/sshd
  radosgw:/usr/bin/radosgw
  ceph-mon:/usr/bin/ceph-mon
  ceph-osd:/usr/bin/ceph-osd
  ceph-common:/usr/bin/ceph
  chromium:/usr/bin/chromium
)

if [ "$mode" = list ]; then
  declare -n chosen="${2:?list what: build, runtime or servers}"
  for entry in "${chosen[@]}"; do echo "${entry%%:*}"; done
  exit 0
fi

case "$mode" in
  demo) wanted=("${build[@]}" "${runtime[@]}") ;;
  test) wanted=("${build[@]}" "${runtime[@]}" "${servers[@]}") ;;
  *) echo "usage: $0 demo|test|list build|runtime|servers" >&2; exit 2 ;;
esac
need=()   # Debian packages missing
for entry in "${wanted[@]}"; do
  [ -e "${entry#*:}" ] || need+=("${entry%%:*}")
done

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
