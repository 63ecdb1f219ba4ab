#!/usr/bin/env bash
# Installs, from Debian's packages, what Strata needs from the system and finds missing:
# Java 17 (every JVM service), Maven (fetches the services and Flink jars), PostgreSQL 15's
# server binaries; with --test also the real syslog clients the collector tests drive
# (syslog-ng; rsyslog conflicts with it as a package, so its test unpacks rsyslog itself) and
# promtool (Debian's prometheus package), which checks the API's /metrics, and chromium's headless
# shell, the browser the web app tests drive with Playwright (Playwright's own download needs a
# site these machines cannot reach).
# Debian is kept from creating or starting clusters or services of its own: the stack runs its
# own PostgreSQL on the port in its settings, and the tests run syslog-ng in the foreground.
set -euo pipefail

missing=()
if [ "${1:-}" = "--test" ]; then
    command -v syslog-ng >/dev/null || [ -x /usr/sbin/syslog-ng ] || missing+=(syslog-ng-core)
    [ -d /usr/share/syslog-ng/include/scl/elasticsearch ] || missing+=(syslog-ng-mod-http syslog-ng-scl)
    command -v promtool >/dev/null || missing+=(prometheus)  # promtool checks what /metrics serves
    command -v chromium-headless-shell >/dev/null || missing+=(chromium-headless-shell)
    # The libraries rsyslogd links, for the rsyslog test that unpacks Debian's rsyslog package.
    dpkg -s libestr0 libfastjson4 liblognorm5 >/dev/null 2>&1 || missing+=(libestr0 libfastjson4 liblognorm5)
fi
java17=$(ls -d /usr/lib/jvm/*17* 2>/dev/null | head -n1 || true)
[ -n "$java17" ] || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql-15)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${missing[*]}; install them with apt-get (as root)" >&2
    exit 1
fi
mkdir -p /etc/postgresql-common
[ -f /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; created_policy=1; fi
trap '[ $created_policy = 1 ] && rm -f "$policy"' EXIT
echo "installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${missing[@]}"
