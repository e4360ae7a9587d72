#!/usr/bin/env bash
# scripts/try.sh - try shenbao on this machine, with the embedded defaults (SQLite) and the local
# test mail servers of scripts/mailstack.sh. Nothing leaves the machine.
#
#   scripts/try.sh            start the mail servers, write ./shenbao-local (shenbao init) once,
#                             and run the daemon in the foreground (Ctrl-C stops it)
#   scripts/try.sh send       (in another terminal) mail an application from branch1@example.test
#   scripts/try.sh read       show the newest mail in branch1@example.test's inbox (the answer)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${SHENBAO_TRY_DIR:-shenbao-local}
BIN=target/debug/shenbao

build() { cargo build --quiet --bin shenbao; }

case "${1:-run}" in
  run)
    scripts/mailstack.sh start >/dev/null
    build
    [ -f "$DIR/shenbao.toml" ] || "$BIN" init --dir "$DIR"
    echo "[try] daemon starting; in another terminal: scripts/try.sh send, then scripts/try.sh read" >&2
    exec "$BIN" --config "$DIR/shenbao.toml" run
    ;;
  send)
    # An application as QQ Mail would send it, addressed from a branch on the example roster.
    mail=$(mktemp)
    sed -e 's/2479582@example\.edu\.cn/branch1@example.test/g' \
        -e 's/^To: .*/To: intake@example.test/' \
        -e "s/81a7713a\.02fa\.19967605ac0\.Coremail/try-$(date +%s)/" \
        -e 's/^Subject: .*/Subject: =?UTF-8?B?'"$(printf '对标争先建设项目申报-土木工程学院本科生第一党支部' | base64 -w0)"'?=/' \
        tests/fixtures/samples/c001/message.eml > "$mail"
    curl -sS --url smtp://127.0.0.1:2525 --mail-from branch1@example.test \
         --mail-rcpt intake@example.test --upload-file "$mail"
    rm -f "$mail"
    echo "[try] sent; the answer arrives in branch1@example.test within seconds: scripts/try.sh read" >&2
    ;;
  read)
    n=$(curl -sS -u branch1@example.test:branch1-pw 'imap://127.0.0.1:3143/INBOX' -X 'STATUS INBOX (MESSAGES)' \
        | sed -n 's/.*MESSAGES \([0-9]*\).*/\1/p')
    [ "${n:-0}" -gt 0 ] || { echo "[try] branch1's inbox is empty so far" >&2; exit 1; }
    curl -sS -u branch1@example.test:branch1-pw "imap://127.0.0.1:3143/INBOX;MAILINDEX=$n" \
      | python3 -c 'import sys,email; from email.header import decode_header, make_header
m=email.message_from_bytes(sys.stdin.buffer.read())
for h in ("From","To","Subject","Date","In-Reply-To"): print(f"{h}: {make_header(decode_header(m.get(h,"")))}")
print()
for p in m.walk():
    if p.get_content_type()=="text/plain": print(p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8"))'
    ;;
  *) echo "usage: $0 [run|send|read]" >&2; exit 2 ;;
esac
