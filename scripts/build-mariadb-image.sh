#!/usr/bin/env bash
# Builds the local Docker image hotrow/mariadb:10.11 from Debian's own
# packages, for machines with a Docker engine but no image registry:
#
#   debootstrap --variant=minbase --include=mariadb-server bookworm ROOTFS
#   tar -C ROOTFS -c . | docker import --change ... - hotrow/mariadb:10.11
#
# The image behaves like the official mariadb image where hotrow relies on
# it: MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD), MARIADB_USER /
# MARIADB_PASSWORD / MARIADB_DATABASE on first start, port 3306, and
# arguments that start with "-" go to mariadbd. With no arguments it runs
# with the durable binlog settings of DESIGN.md (sync_binlog=1,
# innodb_flush_log_at_trx_commit=1, ROW binlog with full metadata).
#
# Usage: scripts/build-mariadb-image.sh [--force] [IMAGE]
#   IMAGE     default hotrow/mariadb:10.11 (HOTROW_MARIADB_IMAGE overrides)
#   --force   rebuild even if the image exists
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs root (debootstrap), debootstrap and docker; takes about a minute.
set -euo pipefail

force=0
if [ "${1:-}" = "--force" ]; then
	force=1
	shift
fi
image="${1:-${HOTROW_MARIADB_IMAGE:-hotrow/mariadb:10.11}}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

command -v docker >/dev/null || { echo "docker not found" >&2; exit 1; }
if [ "$force" -eq 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
	echo "$image already exists (use --force to rebuild)"
	exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "debootstrap needs root: sudo $0 $*" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
	echo "installing debootstrap (apt-get)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

rootfs="$(mktemp -d /tmp/hotrow-mariadb-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

echo "debootstrap bookworm with mariadb-server into $rootfs (about a minute)" >&2
debootstrap --variant=minbase --include=mariadb-server bookworm "$rootfs" "$mirror" >&2

# Keep the image small: no package caches, docs or man pages.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
	"$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
# The Debian package's own datadir is re-initialised by the entry point.
rm -rf "$rootfs"/var/lib/mysql/*

cat >"$rootfs/usr/local/bin/hotrow-mariadb-entrypoint" <<'ENTRYPOINT'
#!/bin/sh
# Entry point of hotrow/mariadb: initialise /var/lib/mysql on first start,
# create the accounts named by the environment, then run mariadbd in the
# foreground with the arguments given (default: durable binlog settings).
set -eu
datadir=/var/lib/mysql
root_pw="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
user="${MARIADB_USER:-${MYSQL_USER:-}}"
user_pw="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"
database="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
mkdir -p /run/mysqld "$datadir"
chown mysql:mysql /run/mysqld "$datadir"

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	if [ ! -d "$datadir/mysql" ]; then
		mariadb-install-db --user=mysql --datadir="$datadir" \
			--auth-root-authentication-method=normal --skip-test-db >/dev/null
		init=/run/mysqld/init.sql
		{
			echo "DELETE FROM mysql.global_priv WHERE User = '';"
			if [ -n "$root_pw" ]; then
				echo "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$root_pw';"
				echo "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;"
				echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_pw';"
			fi
			if [ -n "$database" ]; then
				echo "CREATE DATABASE IF NOT EXISTS \`$database\`;"
			fi
			if [ -n "$user" ]; then
				echo "CREATE USER IF NOT EXISTS '$user'@'%' IDENTIFIED BY '$user_pw';"
				if [ -n "$database" ]; then
					echo "GRANT ALL PRIVILEGES ON \`$database\`.* TO '$user'@'%';"
				fi
			fi
			echo "FLUSH PRIVILEGES;"
		} >"$init"
		chown mysql:mysql "$init"
		set -- "--init-file=$init" "$@"
	fi
	if [ "$#" -eq 0 ] || ! printf '%s\n' "$@" | grep -q -- '--log-bin'; then
		set -- "$@" --log-bin=binlog --binlog-format=ROW --binlog-row-image=FULL \
			--binlog-row-metadata=FULL --server-id=1 --sync-binlog=1 \
			--innodb-flush-log-at-trx-commit=1 --max-connections=3000
	fi
	exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 \
		--port=3306 --skip-name-resolve "$@"
fi
exec "$@"
ENTRYPOINT
chmod 0755 "$rootfs/usr/local/bin/hotrow-mariadb-entrypoint"

echo "importing the rootfs as $image" >&2
tar -C "$rootfs" -c . | docker import \
	--change 'ENTRYPOINT ["/usr/local/bin/hotrow-mariadb-entrypoint"]' \
	--change 'CMD []' \
	--change 'EXPOSE 3306' \
	--change 'ENV LANG=C.UTF-8' \
	--message "hotrow: mariadb-server from Debian bookworm" \
	- "$image" >/dev/null
docker image ls "$image"
