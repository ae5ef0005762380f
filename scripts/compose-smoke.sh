#!/usr/bin/env bash
# End-to-end smoke test of docker-compose.yml, run for real on this machine:
#   bash scripts/compose-smoke.sh
# Builds and starts the stack with compose-real.sh (a private Docker engine with local stand-ins for
# the base images; it lives in shared/tools/ beside this repo), creates a user with the users CLI,
# logs in through nginx, and checks that the per-IP login limit holds across the three replicas, that
# Redis admits only the service's ACL user, and that the service's containers are locked down.
# The stack is always torn down, volumes included. Needs root (for compose-real), curl and node.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
tool="$(dirname "$repo")/shared/tools/compose-real.sh"
base_url=http://127.0.0.1:8080
username=smoke-user
# RATE_LIMIT_MAX and the window of the compose stack (the service's defaults).
limit=5

passed=0
failed=0
check() {  # check <PASS|FAIL> <what>
  printf '%-4s  %s\n' "$1" "$2"
  if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
die() { check FAIL "$1"; exit 1; }

compose_real() { bash "$tool" "$@"; }

finish() {
  trap - EXIT
  if [ "$failed" -gt 0 ] && [ -n "${stack_started:-}" ]; then
    echo "--- last log lines of the stack ---"
    compose_real compose "$repo" logs --no-color --tail=40 2>&1 || true
  fi
  if [ -n "${stack_started:-}" ]; then
    compose_real down "$repo" -v >/dev/null 2>&1 || echo "warning: compose-real down failed" >&2
  fi
  rm -rf "${work:-}"
  echo "compose-smoke: $passed passed, $failed failed"
  if [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; then echo "PASS"; exit 0; fi
  echo "FAIL"; exit 1
}
trap finish EXIT

[ -f "$tool" ] || die "compose-real.sh not found at $tool (expected in shared/tools/ beside the repo)"
command -v curl >/dev/null || die "curl is not installed"
work=$(mktemp -d)

# --- up ------------------------------------------------------------------------------------------
stack_started=1
if compose_real up "$repo" >"$work/up.log" 2>&1; then
  check PASS "stack up: redis healthy, keygen done, auth replicas healthy, nginx running"
else
  tail -40 "$work/up.log"
  die "stack up (compose-real.sh up)"
fi

ready=""
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null "$base_url/health/ready"; then ready=1; break; fi
  sleep 1
done
[ -n "$ready" ] || die "GET /health/ready through nginx answers 200 within 60 s"
check PASS "GET /health/ready through nginx answers 200"

# --- Redis admits the service's user only ---------------------------------------------------------
reply=$(compose_real compose "$repo" exec -T redis redis-cli ping 2>&1 | tr -d '\r')
if [[ $reply == *NOAUTH* ]]; then
  check PASS "Redis refuses a client without credentials (NOAUTH)"
else
  check FAIL "Redis without credentials: got '$reply', want NOAUTH"
fi
# shellcheck disable=SC2016  # expanded inside the container, where the password file is
reply=$(compose_real compose "$repo" exec -T redis sh -c \
  'REDISCLI_AUTH="$(cat /keys/redis-password)" redis-cli --no-auth-warning --user "$REDIS_USERNAME" set outside-the-prefix 1' 2>&1 | tr -d '\r')
if [[ $reply == *NOPERM* ]]; then
  check PASS "the service's Redis user cannot touch keys outside REDIS_KEY_PREFIX (NOPERM)"
else
  check FAIL "the service's Redis user outside its prefix: got '$reply', want NOPERM"
fi

# --- the service's containers --------------------------------------------------------------------
if compose_real compose "$repo" exec -T auth sh -c 'command -v npm || command -v npx || command -v corepack' >/dev/null 2>&1; then
  check FAIL "the runtime image carries no npm, npx or corepack"
else
  check PASS "the runtime image carries no npm, npx or corepack"
fi
if compose_real compose "$repo" exec -T auth sh -c 'touch /app/written' >/dev/null 2>&1; then
  check FAIL "the auth container's root filesystem is read-only"
else
  check PASS "the auth container's root filesystem is read-only"
fi
caps=$(compose_real compose "$repo" exec -T auth sh -c 'grep -E "^Cap(Eff|Prm|Bnd):|^NoNewPrivs:" /proc/1/status' 2>&1 | tr -d '\r' | tr -s ' \t' ' ')
if [[ $caps == *"CapEff: 0000000000000000"* && $caps == *"CapBnd: 0000000000000000"* && $caps == *"NoNewPrivs: 1"* ]]; then
  check PASS "the service runs with no capabilities and no-new-privileges"
else
  check FAIL "the service's capabilities: got '$caps', want CapEff/CapBnd 0 and NoNewPrivs 1"
fi

# --- a user --------------------------------------------------------------------------------------
# 24 random URL-safe characters: passes a 15-character policy and needs no JSON escaping.
password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
if printf '%s\n' "$password" \
    | compose_real compose "$repo" exec -T auth node dist/cli/users.js add "$username" >"$work/add.log" 2>&1; then
  check PASS "users.js add $username (password piped on stdin)"
else
  cat "$work/add.log"
  die "users.js add $username"
fi

login() {  # login <body file> [curl args...]; prints the HTTP status
  local out=$1; shift
  curl -sS -o "$out" -w '%{http_code}' -H 'content-type: application/json' \
    --data "{\"username\":\"$username\",\"password\":\"$password\"}" "$@" "$base_url/api/auth/login"
}

has_access_token() {
  node -e '
    const body = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"))
    process.exit(typeof body?.data?.accessToken === "string" && body.data.accessToken.length > 0 ? 0 : 1)
  ' "$1" 2>/dev/null
}

# --- login and the per-IP limit ------------------------------------------------------------------
status=$(login "$work/login-1.json")
if [ "$status" = 200 ] && has_access_token "$work/login-1.json"; then
  check PASS "login through nginx: 200 with data.accessToken"
else
  cat "$work/login-1.json"; echo
  die "login through nginx: got $status, want 200 with data.accessToken"
fi

# Six more from the same client inside the window: the limit is shared by all replicas, so
# attempts 2..5 pass and 6..7 are refused, whichever replica nginx picks.
statuses=(200)
for i in 2 3 4 5 6 7; do
  statuses+=("$(login "$work/login-$i.json")")
done
admitted=0
for s in "${statuses[@]}"; do [ "$s" != 429 ] && admitted=$((admitted + 1)); done
expected="200 200 200 200 200 429 429"
if [ "${statuses[*]}" = "$expected" ]; then
  check PASS "7 logins in a minute from one client: $admitted admitted, the rest 429 (${statuses[*]})"
else
  check FAIL "7 logins in a minute from one client: want '$expected', got '${statuses[*]}' ($admitted admitted, want $limit)"
fi

# nginx overwrites X-Forwarded-For, so a client cannot pose as someone else to escape the limit.
status=$(login "$work/login-spoofed.json" -H 'X-Forwarded-For: 203.0.113.7' -H 'X-Real-IP: 203.0.113.7')
if [ "$status" = 429 ]; then
  check PASS "a spoofed X-Forwarded-For does not reset the limit (429)"
else
  check FAIL "a spoofed X-Forwarded-For does not reset the limit: got $status, want 429"
fi

# The limit is per client, not nginx's own address: a login from another address (a container on
# the stack's network, through nginx) is still admitted.
# shellcheck disable=SC2016  # the single-quoted text is JavaScript for node, not for the shell
status=$(printf '{"username":"%s","password":"%s"}' "$username" "$password" \
  | compose_real compose "$repo" exec -T auth node -e '
      const body = require("node:fs").readFileSync(0, "utf8")
      fetch("http://nginx:8080/api/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body })
        .then((res) => console.log(res.status), (err) => console.log(`error: ${err.message}`))
    ' 2>&1 | tr -d '\r' | tail -n 1)
if [ "$status" = 200 ]; then
  check PASS "another client address is limited separately (200)"
else
  check FAIL "another client address is limited separately: got '$status', want 200"
fi

# The count above only proves a shared limit if the logins were spread over the replicas.
replicas=$(compose_real compose "$repo" logs --no-color nginx 2>/dev/null \
  | grep -o 'POST /api/auth/login [^"]*" [0-9]* [0-9]* upstream=[0-9.:]*' \
  | sed 's/.*upstream=//' | sort -u | wc -l)
if [ "$replicas" -ge 2 ]; then
  check PASS "the logins reached $replicas different replicas"
else
  check FAIL "the logins reached $replicas replica(s), want at least 2"
fi

# --- metrics stay private ------------------------------------------------------------------------
status=$(curl -sS -o /dev/null -w '%{http_code}' "$base_url/metrics")
if [ "$status" = 404 ]; then
  check PASS "GET /metrics through nginx is refused (404)"
else
  check FAIL "GET /metrics through nginx: got $status, want 404"
fi
