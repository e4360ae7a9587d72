#!/usr/bin/env bash
# scripts/test.sh - the whole test suite, on a fresh machine too:
#   installs and starts the local mail servers (Dovecot + Postfix, loopback only) and a
#   private PostgreSQL (scripts/pgstack.sh, loopback only),
#   checks formatting and lints, then runs every test (unit, integration, end-to-end).
# Usage: scripts/test.sh [extra cargo test args]
# Env:   SHENBAO_KEEP_MAILSTACK=1  leave the mail servers and PostgreSQL running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test] %s\n' "$*" >&2; }

command -v cargo >/dev/null || { log "cargo not found: install the Rust toolchain (1.95) first"; exit 1; }

# The try-out's smoke test needs curl and python3; tests/e2e/install.rs checks the unit with
# systemd-analyze (package systemd); tests/e2e/board.rs screenshots the board with a headless
# chromium. Installed once, like the mail servers.
pkgs=()
command -v curl >/dev/null || pkgs+=(curl)
command -v python3 >/dev/null || pkgs+=(python3)
command -v systemd-analyze >/dev/null || pkgs+=(systemd)
command -v chromium >/dev/null || pkgs+=(chromium)
# tests/e2e/browser.rs drives that chromium through WebDriver.
command -v chromedriver >/dev/null || pkgs+=(chromium-driver)
# Chinese glyphs for those screenshots (without them every character is a box).
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || pkgs+=(fonts-noto-cjk)
if [ ${#pkgs[@]} -gt 0 ]; then
  log "installing ${pkgs[*]}"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o DPkg::Lock::Timeout=300 "${pkgs[@]}"
  }
  apt_install || { apt-get update -q -o DPkg::Lock::Timeout=300 && apt_install; }
fi

log "starting the local mail servers (installs Dovecot and Postfix on first use)"
scripts/mailstack.sh start >/dev/null
# tests/faults.rs starts a private stack of its own (it stops and restarts servers); same
# directory and ports as FAULT_STACK there.
faults_stack() {
  MAILSTACK_DIR=/tmp/shenbao-mailstack-faults MAILSTACK_IMAP_PORT=3144 MAILSTACK_IMAPS_PORT=3994 \
    MAILSTACK_SMTP_PORT=2526 scripts/mailstack.sh "$@"
}
if [ "${SHENBAO_KEEP_MAILSTACK:-0}" != 1 ]; then
  trap 'scripts/mailstack.sh stop >/dev/null 2>&1 || true; faults_stack stop >/dev/null 2>&1 || true; scripts/pgstack.sh stop >/dev/null 2>&1 || true' EXIT
fi
# tests/postgres_statements.rs prepares every statement of src/store on it (a database of its
# own per test); SHENBAO_TEST_POSTGRES tells the tests where it is.
log "starting the local PostgreSQL (installs Debian's postgresql on first use)"
eval "$(scripts/pgstack.sh start)"
export SHENBAO_TEST_POSTGRES

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --locked --all-targets -- -D warnings
# The try-out of the README, once: `scripts/try.sh` (daemon), `send`, `read`. Its own directory
# and its own intake mailbox (intake27), so it meets neither a try-out in shenbao-local nor the
# other tests; the answer must say 材料齐全 for the branch the mail came from.
log "try.sh smoke test (start, send, read)"
try_smoke() {
  local dir pid out web rc=0
  dir=$(mktemp -d /tmp/shenbao-try-smoke.XXXXXX)
  # The board on a free port, so that a try-out of yours on 8640 does not stop this one.
  web=127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export SHENBAO_TRY_DIR=$dir SHENBAO_TRY_INTAKE=intake27 SHENBAO_TRY_WEB=$web
  scripts/try.sh >"$dir/daemon.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    [ -f "$dir/shenbao.toml" ] || ! kill -0 "$pid" 2>/dev/null && break
    sleep 1
  done
  if scripts/try.sh send && out=$(SHENBAO_TRY_WAIT=60 scripts/try.sh read); then
    if ! grep -q '^Subject: .*土木工程学院本科生第一党支部（已收到，第1版，材料齐全）' <<<"$out" \
       || ! grep -q '识别的支部：土木工程学院本科生第一党支部' <<<"$out"; then
      log "try.sh: the answer is not 材料齐全 for 土木工程学院本科生第一党支部:"; printf '%s\n' "$out" >&2; rc=1
    fi
  else
    log "try.sh send/read failed; daemon log:"; tail -n 30 "$dir/daemon.log" >&2; rc=1
  fi
  # The board that try.sh announced answers with its login page.
  if ! grep -q "看板：http://$web/" "$dir/daemon.log" \
     || [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$web/login")" != 200 ]; then
    log "try.sh: the board at http://$web/ was not announced or does not answer:"; tail -n 30 "$dir/daemon.log" >&2; rc=1
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  unset SHENBAO_TRY_DIR SHENBAO_TRY_INTAKE SHENBAO_TRY_WEB
  return $rc
}
try_smoke
log "cargo test"
cargo test --locked --all-targets "$@"
# The same end-to-end suite again, each test on a fresh PostgreSQL database of the private
# cluster (issue 15: the whole suite passes on PostgreSQL as on SQLite).
log "cargo test --test e2e on PostgreSQL"
SHENBAO_TEST_BACKEND=postgres cargo test --locked --test e2e "$@"
