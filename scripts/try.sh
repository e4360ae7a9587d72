#!/usr/bin/env bash
# scripts/try.sh - try shenbao on this machine, with the embedded defaults (SQLite) and the local
# test mail servers of scripts/mailstack.sh. Nothing leaves the machine.
#
#   scripts/try.sh            start the mail servers, write ./shenbao-local (shenbao init) once,
#                             and run the daemon in the foreground (Ctrl-C stops it)
#   scripts/try.sh send [ADDR]  (in another terminal) mail a clean application from the roster
#                             branch whose secretary is ADDR (default branch1@example.test:
#                             土木工程学院本科生第一党支部), with that branch's own form and summary
#   scripts/try.sh read [ADDR]  show shenbao's answer to the last mail sent from ADDR (waits for it
#                             up to SHENBAO_TRY_WAIT seconds, default 30); without one, the newest
#                             mail in ADDR's inbox
#
# The board (看板) runs with the daemon: `shenbao init` turns it on at 127.0.0.1:8640 with the
# account staff, whose password is in $DIR/secrets/web.password; `run` prints both.
#
# Env: SHENBAO_TRY_DIR     the config and data directory (default shenbao-local)
#      SHENBAO_TRY_INTAKE  the test server's intake mailbox (default intake; scripts/test.sh's
#                          smoke test uses its own, so it never meets a daemon you are trying)
#      SHENBAO_TRY_WEB     the board's address when the directory is first made (default
#                          127.0.0.1:8640; the smoke test takes a free port)
# Needs curl, and python3 (3.9 or later) for send and read.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${SHENBAO_TRY_DIR:-shenbao-local}
INTAKE=${SHENBAO_TRY_INTAKE:-intake}
BIN=${CARGO_TARGET_DIR:-target}/debug/shenbao
IMAP=imap://127.0.0.1:${MAILSTACK_IMAP_PORT:-3143}
SMTP=smtp://127.0.0.1:${MAILSTACK_SMTP_PORT:-2525}
LAST=$DIR/.try-last-sent

say() { printf '[try] %s\n' "$*" >&2; }
build() { cargo build --quiet --bin shenbao; }
need_python() {
  command -v python3 >/dev/null || { say "需要 python3（apt-get install python3）"; exit 1; }
}
# Sequence number of the newest message in ADDR's INBOX matching the IMAP search KEY, or nothing.
search() { # search ADDR KEY
  curl -sS -u "$1:${1%@*}-pw" "$IMAP/INBOX" -X "SEARCH $2" | tr -d '\r' \
    | sed -n 's/^\* SEARCH//p' | tr ' ' '\n' | sed '/^$/d' | tail -n 1
}

case "${1:-run}" in
  run)
    scripts/mailstack.sh start >/dev/null
    build
    if [ ! -f "$DIR/shenbao.toml" ]; then
      "$BIN" init --dir "$DIR"
      if [ "$INTAKE" != intake ]; then
        sed -i -e "s/intake@example\.test/$INTAKE@example.test/g" "$DIR/shenbao.toml"
        printf '%s-pw\n' "$INTAKE" > "$DIR/secrets/imap.password"
      fi
      if [ -n "${SHENBAO_TRY_WEB:-}" ]; then
        sed -i -e "s/^listen = \"127\.0\.0\.1:8640\"/listen = \"$SHENBAO_TRY_WEB\"/" "$DIR/shenbao.toml"
      fi
    fi
    web=$(sed -n 's/^listen = "\(.*\)"$/\1/p' "$DIR/shenbao.toml" | head -n 1)
    if [ -n "$web" ] && [ -f "$DIR/secrets/web.password" ]; then
      say "看板：http://$web/ （账号 staff，密码 $(cat "$DIR/secrets/web.password")，保存在 $DIR/secrets/web.password）"
    else
      say "$DIR/shenbao.toml 中没有看板（[web]）；删除 $DIR 后重新运行 scripts/try.sh 即可开启"
    fi
    args=()
    # First start: also take mail that arrived today before the daemon was watching (a `send`
    # right after starting), instead of leaving all existing mail alone.
    [ -e "$DIR/data/shenbao.db" ] || args=(--backfill-since "$(date +%F)")
    say "daemon starting; in another terminal: scripts/try.sh send, then scripts/try.sh read"
    exec "$BIN" --config "$DIR/shenbao.toml" run "${args[@]}"
    ;;
  send)
    need_python
    addr=${2:-branch1@example.test}
    roster=$DIR/roster.csv
    [ -f "$roster" ] || roster=config/roster.example.csv
    mail=$(mktemp)
    trap 'rm -f "$mail"' EXIT
    python3 scripts/try-application.py "$roster" "$addr" "$INTAKE@example.test" > "$mail"
    id=$(sed -n 's/^Message-ID: *//Ip' "$mail" | head -n 1 | tr -d '\r')
    curl -sS --url "$SMTP" --mail-from "$addr" --mail-rcpt "$INTAKE@example.test" --upload-file "$mail"
    mkdir -p "$DIR"
    printf '%s %s\n' "$addr" "$id" >> "$LAST"
    say "sent $id from $addr; the answer arrives within seconds: scripts/try.sh read${2:+ $2}"
    ;;
  read)
    need_python
    addr=${2:-branch1@example.test}
    id=$( { [ -f "$LAST" ] && awk -v a="$addr" '$1==a {id=$2} END {print id}' "$LAST"; } || true)
    if [ -n "$id" ]; then
      # The answer to that very mail: the inbox may hold other tests' mail too.
      n=""
      for _ in $(seq "${SHENBAO_TRY_WAIT:-30}"); do
        n=$(search "$addr" "HEADER In-Reply-To \"$id\"")
        [ -z "$n" ] || break
        sleep 1
      done
      [ -n "$n" ] || { say "还没有收到对 $id 的回复（daemon 在运行吗？scripts/try.sh）"; exit 1; }
    else
      n=$(search "$addr" ALL)
      [ -n "$n" ] || { say "$addr 的收件箱里还没有邮件"; exit 1; }
    fi
    curl -sS -u "$addr:${addr%@*}-pw" "$IMAP/INBOX;MAILINDEX=$n" | python3 -c '
import sys, email
from email.header import decode_header, make_header
m = email.message_from_bytes(sys.stdin.buffer.read())
for h in ("From", "To", "Cc", "Subject", "Date", "In-Reply-To"):
    if m.get(h) is not None:
        print("%s: %s" % (h, make_header(decode_header(m.get(h)))))
print()
for p in m.walk():
    if p.get_content_type() == "text/plain":
        print(p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8"))
'
    ;;
  *) echo "usage: $0 [run|send [ADDR]|read [ADDR]]" >&2; exit 2 ;;
esac
