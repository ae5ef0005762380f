#!/bin/sh
# Rehearses k8s/overlays/ha's Redis on this machine with real redis-server processes: three "pods"
# (redis-server + Sentinel each, started by the overlay's own redis-ha.sh and redis-start.sh) in a
# private network namespace whose /etc/hosts gives them their Kubernetes DNS names. Checks the ACL
# users, replication and WAIT, then SIGKILLs the primary and measures how long until the Sentinels
# name a new primary and it acknowledges a write, that nothing written before is lost, and that the
# killed pod comes back as a replica.
#   sudo sh scripts/redis-ha-rehearsal.sh
# Needs root (unshare -m -n), iproute2 and redis-server/redis-cli 7. Uses no port outside its namespace.
set -eu
if [ "${1:-}" != --inside ]; then
  repo=$(cd "$(dirname "$0")/.." && pwd -P)
  work=$(mktemp -d)
  trap '[ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
  mkdir -p "$work/scripts" "$work/secrets"
  cp "$repo/k8s/base/redis-start.sh" "$repo/k8s/overlays/ha/redis-ha.sh" "$work/scripts/"
  for file in password replication-password sentinel-password; do
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secrets/$file"
  done
  for i in 0 1 2; do echo "127.0.0.$((11 + i)) auth-redis-$i.auth-redis.rehearsal.svc"; done > "$work/hosts"
  echo '127.0.0.1 localhost' >> "$work/hosts"
  status=0
  unshare -m -n sh "$0" --inside "$work" || status=$?
  exit "$status"
fi

work=$2
ip link set lo up
mount --bind "$work/hosts" /etc/hosts
export POD_NAMESPACE=rehearsal REDIS_SENTINEL_MASTER=auth REDIS_USERNAME=auth-service REDIS_KEY_PREFIX='auth:' \
  REDIS_PASSWORD_FILE="$work/secrets/password" REDIS_REPLICATION_PASSWORD_FILE="$work/secrets/replication-password" \
  REDIS_SENTINEL_PASSWORD_FILE="$work/secrets/sentinel-password"
host() { echo "auth-redis-$1.auth-redis.rehearsal.svc"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
start_pod() {  # start_pod <i> redis|sentinel: as the StatefulSet's containers, bound to the pod's address
  mkdir -p "$work/pod$1/data" "$work/pod$1/run-$2"
  if [ "$2" = redis ]; then
    POD_NAME=auth-redis-$1 REDIS_RUN_DIR="$work/pod$1/run-redis" sh "$work/scripts/redis-ha.sh" redis \
      --bind "127.0.0.$((11 + $1))" --dir "$work/pod$1/data" --appendonly yes --appendfsync everysec \
      --maxmemory-policy noeviction --min-replicas-to-write 1 --min-replicas-max-lag 10 > "$work/pod$1/redis.log" 2>&1 &
  else
    POD_NAME=auth-redis-$1 REDIS_RUN_DIR="$work/pod$1/run-sentinel" sh "$work/scripts/redis-ha.sh" sentinel \
      --bind "127.0.0.$((11 + $1))" > "$work/pod$1/sentinel.log" 2>&1 &
  fi
  echo $! > "$work/pod$1/$2.pid"
}
service() { REDISCLI_AUTH=$(cat "$REDIS_PASSWORD_FILE") redis-cli --no-auth-warning --user auth-service "$@"; }
sentinel() { REDISCLI_AUTH=$(cat "$REDIS_SENTINEL_PASSWORD_FILE") redis-cli --no-auth-warning -p 26379 "$@"; }
failed=0
check() {  # check <what> <got> <want>
  if [ "$2" = "$3" ]; then echo "PASS  $1: $2"; else echo "FAIL  $1: got '$2', want '$3'"; failed=1; fi
}
stop_all() {
  for pid in "$work"/pod*/*.pid; do kill "$(cat "$pid")" 2>/dev/null || true; done
  sleep 1
}
trap stop_all EXIT

# Pods start in order, as a StatefulSet starts them.
for i in 0 1 2; do start_pod "$i" redis; start_pod "$i" sentinel; sleep 2; done
for _ in $(seq 1 60); do
  [ "$(service -h "$(host 0)" info replication | grep -c state=online)" = 2 ] && break
  sleep 1
done
check "replicas following pod 0" "$(service -h "$(host 0)" info replication | grep -c state=online)" 2
# A failover needs Sentinels that know the replicas (they learn them from the primary's INFO, every
# 10 s) and one another; before that one aborts ("no good slave") and is retried 2 x failover-timeout later.
field() { sentinel -h "$(host "$1")" sentinel master auth | awk -v key="$2" 'found { print; exit } $0 == key { found = 1 }'; }
for _ in $(seq 1 120); do
  known=0
  for i in 0 1 2; do
    [ "$(field "$i" num-slaves)" = 2 ] && [ "$(field "$i" num-other-sentinels)" = 2 ] && known=$((known + 1))
  done
  [ "$known" = 3 ] && break
  sleep 0.5
done
check "Sentinels that know both replicas and the other two Sentinels" "$known" 3
check "primary named by the Sentinels" "$(sentinel -h "$(host 1)" sentinel get-master-addr-by-name auth | head -n 1)" "$(host 0)"
check "the default user" "$(redis-cli -h "$(host 0)" ping)" "NOAUTH Authentication required."
check "the service's user outside its prefix" "$(service -h "$(host 0)" set elsewhere 1 | cut -d ' ' -f 1)" NOPERM
check "a write on the primary" "$(service -h "$(host 0)" set auth:user:before 1)" OK
check "WAIT 2: replicas that have it" "$(service -h "$(host 0)" wait 2 1000)" 2
check "a replica refuses writes" "$(service -h "$(host 2)" set auth:x 1 | cut -d ' ' -f 1)" READONLY

killed_at=$(now)
kill -9 "$(cat "$work/pod0/redis.pid")"
primary=$(host 0)
for _ in $(seq 1 240); do
  primary=$(sentinel -h "$(host 1)" sentinel get-master-addr-by-name auth | head -n 1)
  [ -n "$primary" ] && [ "$primary" != "$(host 0)" ] && break
  sleep 0.25
done
echo "INFO  the Sentinels named $primary $(since "$killed_at") s after the primary's SIGKILL"
written=""
for _ in $(seq 1 240); do
  written=$(service -h "$primary" set auth:user:after 1)
  [ "$written" = OK ] && break
  sleep 0.25
done
check "a write on the new primary" "$written" OK
echo "INFO  the new primary acknowledged a write $(since "$killed_at") s after the SIGKILL"
check "a write acknowledged before the kill" "$(service -h "$primary" get auth:user:before)" 1

# The pod restarts (its Redis container, with its data): the Sentinels tell it who the primary is.
start_pod 0 redis
role=""
for _ in $(seq 1 60); do
  role=$(service -h "$(host 0)" role 2>/dev/null | head -n 1) || role=""
  [ "$role" = slave ] && break
  sleep 0.5
done
check "pod 0 back as" "$role" slave
check "pod 0 follows" "$(service -h "$(host 0)" info replication | tr -d '\r' | sed -n 's/^master_host://p')" "$primary"
[ "$failed" = 0 ] && echo "redis-ha-rehearsal: PASS" || echo "redis-ha-rehearsal: FAIL"
exit "$failed"
