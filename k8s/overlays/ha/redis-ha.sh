#!/bin/sh
# The HA overlay's Redis pods each run redis-server and a Sentinel:
#   redis-ha.sh redis [redis-server options...]   a primary, or a replica of the current primary
#   redis-ha.sh sentinel [options...]             a Sentinel watching REDIS_SENTINEL_MASTER
# Every pod is named by its stable DNS name (auth-redis-N.auth-redis.<namespace>.svc), which the
# Sentinels announce instead of pod IPs, so a restarted pod keeps its identity.
# The primary is the one the Sentinels name; failing that (every Sentinel restarting) the pod whose
# Redis says it is a primary; failing that (the very first start) pod 0.
set -eu
: "${POD_NAME:?}" "${POD_NAMESPACE:?}" "${REDIS_SENTINEL_MASTER:?}" "${REDIS_RUN_DIR:?}"
: "${REDIS_REPLICATION_PASSWORD_FILE:?}" "${REDIS_SENTINEL_PASSWORD_FILE:?}"
service=auth-redis
pods=3

password() { tr -d '\r\n' < "$1"; }
host() { echo "$service-$1.$service.$POD_NAMESPACE.svc"; }
me=$(host "${POD_NAME##*-}")

# One answer of redis-cli, or nothing on an error (which has a space in it; a host name has none).
ask() {
  answer=$(timeout 3 redis-cli --no-auth-warning "$@" 2>/dev/null | head -n 1) || answer=
  case "$answer" in *' '*) answer= ;; esac
  echo "$answer"
}

primary() {
  i=0
  while [ "$i" -lt "$pods" ]; do
    found=$(REDISCLI_AUTH="$(password "$REDIS_SENTINEL_PASSWORD_FILE")" ask -h "$(host "$i")" -p 26379 \
      sentinel get-master-addr-by-name "$REDIS_SENTINEL_MASTER")
    if [ -n "$found" ]; then echo "$found"; return; fi
    i=$((i + 1))
  done
  i=0
  while [ "$i" -lt "$pods" ]; do
    role=$(REDISCLI_AUTH="$(password "$REDIS_REPLICATION_PASSWORD_FILE")" ask -h "$(host "$i")" -p 6379 --user sentinel role)
    if [ "$role" = master ]; then host "$i"; return; fi
    i=$((i + 1))
  done
  host 0
}

case "${1:-}" in
  redis)
    shift
    found=$(primary)
    if [ "$found" != "$me" ]; then set -- "$@" --replicaof "$found" 6379; fi
    exec sh "$(dirname "$0")/redis-start.sh" --replica-announce-ip "$me" "$@"
    ;;
  sentinel)
    found=$(primary)
    umask 077
    # Sentinel rewrites its file as it learns the topology, so it lives in the writable run dir.
    cat > "$REDIS_RUN_DIR/sentinel.conf" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $me
requirepass $(password "$REDIS_SENTINEL_PASSWORD_FILE")
sentinel sentinel-pass $(password "$REDIS_SENTINEL_PASSWORD_FILE")
sentinel monitor $REDIS_SENTINEL_MASTER $found 6379 2
sentinel auth-user $REDIS_SENTINEL_MASTER sentinel
sentinel auth-pass $REDIS_SENTINEL_MASTER $(password "$REDIS_REPLICATION_PASSWORD_FILE")
sentinel down-after-milliseconds $REDIS_SENTINEL_MASTER 5000
sentinel failover-timeout $REDIS_SENTINEL_MASTER 30000
sentinel parallel-syncs $REDIS_SENTINEL_MASTER 1
CONF
    shift
    exec redis-server "$REDIS_RUN_DIR/sentinel.conf" --sentinel "$@"
    ;;
  *)
    echo "usage: redis-ha.sh redis|sentinel [redis-server options...]" >&2
    exit 2
    ;;
esac
