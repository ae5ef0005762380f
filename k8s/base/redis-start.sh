#!/bin/sh
# Starts redis-server with its users made from password files (mounted Secrets or compose's keygen
# volume), so that no password is on a command line, in an environment variable or in a ConfigMap.
# Both files go to REDIS_RUN_DIR, which must be in memory (a tmpfs, an emptyDir of medium Memory):
#   users.acl   `default` off. REDIS_USERNAME reaches keys under REDIS_KEY_PREFIX only, with every
#               command but the dangerous ones (INFO and ROLE excepted: ioredis' ready check and
#               the readiness probe read them). With REDIS_REPLICATION_PASSWORD_FILE (the HA
#               overlay) also `replication` (replicas) and `sentinel` (Sentinel), with the
#               commands Redis' documentation lists for each. Passwords only as SHA-256 hashes.
#   redis.conf  the aclfile, and with REDIS_REPLICATION_PASSWORD_FILE how a replica logs in to its
#               primary (masterauth holds that password: this file never leaves memory).
# A newline at the end of a password file is not part of the password.
# Usage: redis-start.sh [redis-server options...]
set -eu
: "${REDIS_USERNAME:?}" "${REDIS_PASSWORD_FILE:?}" "${REDIS_KEY_PREFIX:?}" "${REDIS_RUN_DIR:?}"

password() { tr -d '\r\n' < "$1"; }
sha256() { password "$1" | sha256sum | cut -d ' ' -f 1; }

umask 077
{
  echo 'user default off'
  echo "user $REDIS_USERNAME on #$(sha256 "$REDIS_PASSWORD_FILE") ~$REDIS_KEY_PREFIX* resetchannels +@all -@dangerous +info +role"
  if [ -n "${REDIS_REPLICATION_PASSWORD_FILE:-}" ]; then
    echo "user replication on #$(sha256 "$REDIS_REPLICATION_PASSWORD_FILE") +psync +replconf +ping"
    echo "user sentinel on #$(sha256 "$REDIS_REPLICATION_PASSWORD_FILE") allchannels +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill"
  fi
} > "$REDIS_RUN_DIR/users.acl"
{
  echo "aclfile $REDIS_RUN_DIR/users.acl"
  if [ -n "${REDIS_REPLICATION_PASSWORD_FILE:-}" ]; then
    echo 'masteruser replication'
    echo "masterauth $(password "$REDIS_REPLICATION_PASSWORD_FILE")"
  fi
} > "$REDIS_RUN_DIR/redis.conf"

exec redis-server "$REDIS_RUN_DIR/redis.conf" "$@"
