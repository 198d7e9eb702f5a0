#!/usr/bin/env bash
# Runs issue 13's workloads with sysbench (a C client) directly against a
# throw-away local MariaDB (durable: binlog on, sync_binlog=1,
# innodb_flush_log_at_trx_commit=1), through HAProxy (tcp mode, nbthread 1:
# a plain relay) and through hotrow, one after the other for each workload
# and thread count, and prints throughput, p95 latency and each side's ratio
# to direct. Everything listens on 127.0.0.1 and stops at the end.
#
#   make build && scripts/sysbench.sh [seconds per side, default 10]
#
# Needs sysbench, mariadbd (mariadb-server) and haproxy; THREADS_HOT and
# THREADS_SELECT override the thread counts ("1 4 16 256", "1 16").
set -euo pipefail

secs=${1:-10}
threads_hot=${THREADS_HOT:-"1 4 16 256"}
threads_select=${THREADS_SELECT:-"1 16"}
root=$(cd "$(dirname "$0")/.." && pwd)
hotrow=$root/bin/hotrow
lua=$root/scripts/sysbench-hot.lua
for tool in sysbench haproxy; do
	command -v $tool >/dev/null || { echo "sysbench.sh: $tool is not installed" >&2; exit 1; }
done
mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
[ -x "$mariadbd" ] || { echo "sysbench.sh: mariadbd is not installed" >&2; exit 1; }
[ -x "$hotrow" ] || { echo "sysbench.sh: run make build first" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d /tmp/hotrow-sysbench-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' TERM INT

db_port=$(free_port)
mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" --auth-root-authentication-method=normal \
	--skip-test-db >"$dir/install.log" 2>&1
"$mariadbd" --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" \
	--log-error="$dir/mysqld.err" --bind-address=127.0.0.1 --port="$db_port" --user="$(id -un)" --skip-name-resolve \
	--log-bin="$dir/data/binlog" --binlog-format=ROW --server-id=1 --sync-binlog=1 --innodb-flush-log-at-trx-commit=1 \
	--innodb-buffer-pool-size=256M --max-connections=3000 >"$dir/mysqld.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do mariadb --no-defaults -S "$dir/mysqld.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
mariadb --no-defaults -S "$dir/mysqld.sock" -uroot <<'SQL'
CREATE USER sb@'127.0.0.1' IDENTIFIED BY 'sb';
GRANT ALL ON *.* TO sb@'127.0.0.1';
CREATE DATABASE sb;
CREATE TABLE sb.inventory (sku_id INT PRIMARY KEY, stock BIGINT NOT NULL);
INSERT INTO sb.inventory VALUES (1, 1000000000000);
SQL

relay_port=$(free_port)
cat >"$dir/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 8192
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen relay
    bind 127.0.0.1:$relay_port
    server db 127.0.0.1:$db_port
CFG
haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
pids+=($!)

proxy_port=$(free_port)
"$hotrow" proxy --listen "127.0.0.1:$proxy_port" --backend "127.0.0.1:$db_port" --user sb:sb \
	--hot-rule sb.inventory:sku_id:stock --log-level warn >"$dir/hotrow.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	mariadb --no-defaults -h127.0.0.1 -P"$proxy_port" -usb -psb -e 'SELECT 1' >/dev/null 2>&1 && break
	sleep 0.2
done

# run MODE THREADS PORT: prints "tps p95_ms" of one sysbench run; on a
# failure, sysbench's output, and the script stops.
run() {
	if ! sysbench "$lua" --mode="$1" --threads="$2" --time="$secs" --mysql-host=127.0.0.1 --mysql-port="$3" \
		--mysql-user=sb --mysql-password=sb --mysql-db=sb --db-ps-mode=disable --percentile=95 run >"$dir/sysbench.out" 2>&1; then
		echo "sysbench.sh: sysbench --mode=$1 --threads=$2 on port $3 failed:" >&2
		cat "$dir/sysbench.out" >&2
		kill $$
	fi
	awk '/transactions:/ { gsub(/[(]/, "", $3); tps = $3 } /95th percentile:/ { p95 = $3 } END { print tps, p95 }' "$dir/sysbench.out"
}

printf '%-7s %7s %12s %9s %12s %9s %8s %12s %9s %8s\n' mode threads direct/s p95_ms relay/s p95_ms relay/d hotrow/s p95_ms hotrow/d
for mode in hot select; do
	threads=$threads_hot
	[ "$mode" = select ] && threads=$threads_select
	for n in $threads; do
		read -r d dp < <(run "$mode" "$n" "$db_port")
		read -r r rp < <(run "$mode" "$n" "$relay_port")
		read -r h hp < <(run "$mode" "$n" "$proxy_port")
		printf '%-7s %7d %12.0f %9s %12.0f %9s %7.2fx %12.0f %9s %7.2fx\n' "$mode" "$n" "$d" "$dp" "$r" "$rp" \
			"$(echo "$r / $d" | bc -l)" "$h" "$hp" "$(echo "$h / $d" | bc -l)"
	done
done
