#!/usr/bin/env bash
# scripts/test.sh - the whole test suite, on a fresh machine too:
#   installs and starts the local mail servers (Dovecot + Postfix, loopback only),
#   checks formatting and lints, then runs every test (unit, integration, end-to-end).
# Usage: scripts/test.sh [extra cargo test args]
# Env:   SHENBAO_KEEP_MAILSTACK=1  leave the mail servers running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test] %s\n' "$*" >&2; }

command -v cargo >/dev/null || { log "cargo not found: install the Rust toolchain (1.95) first"; exit 1; }

log "starting the local mail servers (installs Dovecot and Postfix on first use)"
scripts/mailstack.sh start >/dev/null
# tests/faults.rs starts a private stack of its own (it stops and restarts servers); same
# directory and ports as FAULT_STACK there.
faults_stack() {
  MAILSTACK_DIR=/tmp/shenbao-mailstack-faults MAILSTACK_IMAP_PORT=3144 MAILSTACK_IMAPS_PORT=3994 \
    MAILSTACK_SMTP_PORT=2526 scripts/mailstack.sh "$@"
}
if [ "${SHENBAO_KEEP_MAILSTACK:-0}" != 1 ]; then
  trap 'scripts/mailstack.sh stop >/dev/null 2>&1 || true; faults_stack stop >/dev/null 2>&1 || true' EXIT
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --locked --all-targets -- -D warnings
log "cargo test"
cargo test --locked --all-targets "$@"
