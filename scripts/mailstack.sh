#!/usr/bin/env bash
# scripts/mailstack.sh - shenbao's throwaway mail server for integration tests and benchmarks.
#
# What runs (loopback only, nothing is ever relayed off this machine):
#   Dovecot 2.3  IMAP  127.0.0.1:$MAILSTACK_IMAP_PORT  (3143, plain + STARTTLS)
#                IMAPS 127.0.0.1:$MAILSTACK_IMAPS_PORT (3993, implicit TLS)
#                LMTP  unix socket $MAILSTACK_DIR/run/dovecot/lmtp (only used with MAILSTACK_DELIVERY=lmtp)
#   Postfix 3.7  SMTP  127.0.0.1:$MAILSTACK_SMTP_PORT  (2525, STARTTLS offered, SMTPUTF8)
#                delivers with its virtual(8) agent straight into the Maildirs Dovecot serves,
#                except vacation1@ (transport_maps -> Dovecot LMTP, so its Sieve script runs).
#   Sieve        (Pigeonhole) vacation1@example.test has an active vacation script
#                (`vacation :days 1 :subject "自动回复：休假中"`); Dovecot sends the replies
#                through Postfix (submission_host = 127.0.0.1:$MAILSTACK_SMTP_PORT).
#   (also on [::1] when the host has an IPv6 loopback)
#
#   Domain example.test, users (password = "<user>-pw"; IMAP login "branch1@example.test" or "branch1"):
#     intake reviewer staff branch1 branch2 branch3 catchall, bench and benchreply (the benchmark), intake1..intake40 (one per e2e or
#     fault-injection test) and vacation1 (the Sieve vacation auto-responder)
#   Any recipient outside example.test is rewritten to catchall@example.test; the default and relay
#   transports are "error:", so even a mistake cannot send mail to the outside world.
#   TLS: a private CA ($MAILSTACK_DIR/tls/ca.pem) signs a leaf for localhost, mx.example.test,
#   127.0.0.1 and ::1.
#
# Usage: scripts/mailstack.sh COMMAND
#   install          install the Debian packages (idempotent; apt-get update only when needed)
#   start            (install if needed,) wipe $MAILSTACK_DIR, start both daemons, print `env`.
#                    A stack that is already running is stopped first. With MAILSTACK_KEEP=1 a
#                    healthy running stack is left alone, otherwise mailboxes are kept.
#   stop             stop both daemons (mailboxes stay on disk for inspection)
#   status           exit 0 only if both daemons run and IMAP, IMAPS and SMTP answer
#   env              print shell exports: eval "$(scripts/mailstack.sh env)"
#   stop-dovecot | start-dovecot | restart-dovecot
#   stop-postfix | start-postfix | restart-postfix
#                    fault injection: touch one daemon only, keep configs, mailboxes and queue
#
# Several independent stacks can run side by side with different MAILSTACK_DIR and ports
# (tests/faults.rs runs its own, because it stops and restarts the servers).
#
# Environment:
#   MAILSTACK_DIR          everything lives below it (default /tmp/shenbao-mailstack)
#   MAILSTACK_IMAP_PORT MAILSTACK_IMAPS_PORT MAILSTACK_SMTP_PORT   (3143 3993 2525)
#   MAILSTACK_KEEP=1       see `start`
#   MAILSTACK_AUTO_INSTALL=0  make `start` fail instead of running apt-get when packages are missing
#   MAILSTACK_DELIVERY     virtual (default) or lmtp (Postfix -> Dovecot LMTP; no SMTPUTF8 then)
#   MAILSTACK_MESSAGE_SIZE_LIMIT  bytes, default 104857600 (a 50 MB attachment is ~69 MB as base64)
#   MAILSTACK_START_TIMEOUT       seconds to wait for banners (default 30)
#
# Needs root (CI and the dev machines run as root). No systemd: the daemons are started with a
# private config and stopped through their pid files.
set -euo pipefail

DIR=${MAILSTACK_DIR:-/tmp/shenbao-mailstack}
DOMAIN=example.test
IMAP_PORT=${MAILSTACK_IMAP_PORT:-3143}
IMAPS_PORT=${MAILSTACK_IMAPS_PORT:-3993}
SMTP_PORT=${MAILSTACK_SMTP_PORT:-2525}
DELIVERY=${MAILSTACK_DELIVERY:-virtual}
SIZE_LIMIT=${MAILSTACK_MESSAGE_SIZE_LIMIT:-104857600}
START_TIMEOUT=${MAILSTACK_START_TIMEOUT:-30}
USER_NAMES=(intake reviewer staff branch1 branch2 branch3 catchall bench benchreply intake1 intake2 intake3 intake4 intake5 intake6 intake7 intake8 intake9 intake10 intake11 intake12 intake13 intake14 intake15 intake16 intake17 intake18 intake19 intake20 intake21 intake22 intake23 intake24 intake25 intake26 intake27 intake28 intake29 intake30 intake31 intake32 intake33 intake34 intake35 intake36 intake37 intake38 intake39 intake40 vacation1)
# delivered through Dovecot LMTP with the Sieve plugin (everyone else: Postfix virtual(8))
SIEVE_USERS=(vacation1)
VMAIL=vmail
PACKAGES=(dovecot-imapd dovecot-lmtpd dovecot-sieve postfix openssl)

DC_CONF=$DIR/dovecot/dovecot.conf
DC_RUN=$DIR/run/dovecot          # Dovecot base_dir: master.pid and the unix sockets
DC_PID=$DC_RUN/master.pid
PF_CONF=$DIR/postfix             # Postfix config_directory
PF_QUEUE=$DIR/postfix-queue      # Postfix queue_directory
PF_PID=$PF_QUEUE/pid/master.pid
MARKER=$DIR/.shenbao-mailstack   # only a directory carrying this file is ever wiped
LOCK=${DIR%/}.lock

log() { printf '[mailstack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- small helpers

now_us() { local t=${EPOCHREALTIME//[!0-9]/}; printf '%s' "$t"; }
# seconds since a now_us value, as "1.23"
since() { local d=$(( $(now_us) - $1 )); printf '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000)); }

need_root() { [ "$(id -u)" = 0 ] || die "'$1' needs root"; }

have_ipv6_lo() { grep -qs '^00000000000000000000000000000001 ' /proc/net/if_inet6; }

# Serialise start/stop/restart (e.g. several test binaries starting the stack at once).
# The lock file sits beside $DIR because $DIR itself gets wiped. Daemons are started with 9>&-
# so they do not inherit (and hold) the lock.
take_lock() { exec 9>"$LOCK"; flock -w 300 9 || die "could not lock $LOCK"; }

# Liveness without 'kill -0': PID 1 on these machines is not a real init and reaps orphans
# only every second or two, so a master that already exited lingers as a zombie.
alive() {
  local st
  [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
  read -r st 2>/dev/null < "/proc/$1/stat" || return 1
  st=${st##*) }; st=${st%% *}
  [ "$st" != Z ] && [ "$st" != X ]
}
pid_of() { [ -s "$1" ] && tr -dc '0-9' < "$1"; }
pidfile_alive() { local p; p=$(pid_of "$1") && alive "$p"; }

# Non-zombie processes of session SID. Both masters call setsid(), so their children (imap-login,
# imap, auth, smtpd, qmgr, ...) share the master's session id; used to make sure a stop is complete.
session_members() {
  local f st rest sid out=()
  for f in /proc/[0-9]*/stat; do
    read -r st 2>/dev/null < "$f" || continue
    rest=${st##*) }
    read -r st _ _ sid _ <<< "$rest"
    [ "$sid" = "$1" ] && [ "$st" != Z ] && [ "$st" != X ] && { f=${f#/proc/}; out+=("${f%/stat}"); }
  done
  [ ${#out[@]} -gt 0 ] && printf '%s\n' "${out[@]}"
  return 0
}

# A TCP connect to 127.0.0.1:PORT succeeds.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The first line the server on 127.0.0.1:PORT sends starts with PREFIX.
banner_ok() {
  local port=$1 prefix=$2
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    IFS= read -r -t 2 line <&3 || exit 1
    case $prefix in
      220) printf 'QUIT\r\n' >&3 ;;
      *) printf 'x LOGOUT\r\n' >&3 ;;
    esac
    [[ $line == "$prefix"* ]]
  ) 2>/dev/null
}

# wait_for SECONDS CMD...: poll every 50 ms until CMD succeeds
wait_for() {
  local limit=$(( $(now_us) + $1 * 1000000 )); shift
  until "$@"; do
    [ "$(now_us)" -lt "$limit" ] || return 1
    sleep 0.05
  done
}

# ---------------------------------------------------------------- install

pkg_missing() { # prints the packages of PACKAGES that are not installed
  local p st installed=" "
  while read -r p st; do
    [ "$st" = installed ] && installed+="${p%%:*} "
  done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
  for p in "${PACKAGES[@]}"; do
    [[ $installed == *" $p "* ]] || printf '%s\n' "$p"
  done
}

cmd_install() {
  need_root install
  local missing t0; t0=$(now_us)
  mapfile -t missing < <(pkg_missing)
  if [ ${#missing[@]} = 0 ]; then log "packages present: ${PACKAGES[*]}"; return 0; fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # "No configuration": the postfix package then writes no /etc/postfix/main.cf
  printf '%s\n' 'postfix postfix/main_mailer_type select No configuration' \
                'postfix postfix/mailname string mx.example.test' | debconf-set-selections
  # Never let the maintainer scripts start the system-wide daemons (25/143/993 on all addresses).
  # Docker-style images ship a policy-rc.d that says 101 already; add ours only if there is none.
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# added by shenbao scripts/mailstack.sh during apt-get install\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d; own_policy=1
  fi
  # man-db's trigger is a large part of the install time and useless here; switched back afterwards
  local mandb=/var/lib/man-db/auto-update mandb_off=0
  if [ -e "$mandb" ]; then mv "$mandb" "$mandb.mailstack-off"; mandb_off=1; fi
  # Update the lists only if some package has no candidate (fresh machine, empty lists).
  # Output is captured first: 'apt-cache policy | grep -q' is false under pipefail (SIGPIPE).
  local p pol need_update=0
  for p in "${missing[@]}"; do
    pol=$(apt-cache policy "$p" 2>/dev/null || true)
    [[ $pol == *"Candidate: "[0-9]* ]] || need_update=1
  done
  local rc=0 apt_opts=(-y -q --no-install-recommends --no-upgrade -o DPkg::Lock::Timeout=300)
  if [ $need_update = 1 ]; then apt-get update -q -o DPkg::Lock::Timeout=300 || rc=$?; fi
  if [ $rc = 0 ]; then
    # --no-upgrade: an already installed package (openssl!) is not upgraded as a side effect
    apt-get install "${apt_opts[@]}" "${missing[@]}" || rc=$?
    if [ $rc != 0 ] && [ $need_update = 0 ]; then
      log "install failed, retrying after apt-get update (stale package lists?)"
      rc=0; apt-get update -q -o DPkg::Lock::Timeout=300 && apt-get install "${apt_opts[@]}" "${missing[@]}" || rc=$?
    fi
  fi
  [ $mandb_off = 1 ] && mv "$mandb.mailstack-off" "$mandb"
  [ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || die "apt-get failed (rc=$rc)"
  log "installed in $(since "$t0")s"
}

ensure_installed() {
  if [ -n "$(pkg_missing)" ] || ! command -v dovecot >/dev/null || ! command -v postfix >/dev/null; then
    [ "${MAILSTACK_AUTO_INSTALL:-1}" = 1 ] || die "packages missing: run '$0 install'"
    cmd_install
  fi
  getent passwd "$VMAIL" >/dev/null ||
    useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$VMAIL"
}

# ---------------------------------------------------------------- configuration

check_dir() {
  case $DIR in /*) ;; *) die "MAILSTACK_DIR must be an absolute path: $DIR" ;; esac
  local d; d=$(realpath -m "$DIR")
  [ "$d" != / ] || die "MAILSTACK_DIR must not be /"
  # vmail, postfix and dovenull must traverse every parent (a 0700 'mktemp -d' parent breaks
  # delivery and login with confusing errors)
  d=$(dirname "$d")
  while [ "$d" != / ]; do
    if [ -d "$d" ] && (( (8#$(stat -c %a "$d") & 1) == 0 )); then
      die "$d is not world-searchable: chmod o+x it or choose another MAILSTACK_DIR"
    fi
    d=$(dirname "$d")
  done
}

wipe_dir() {
  [ -e "$DIR" ] || return 0
  if [ -n "$(ls -A "$DIR" 2>/dev/null)" ] && [ ! -e "$MARKER" ]; then
    die "$DIR exists and was not created by mailstack.sh; refusing to wipe it"
  fi
  rm -rf "$DIR"
}

write_tls() {
  local t=$DIR/tls
  # kept across MAILSTACK_KEEP=1 restarts so clients that loaded the CA keep trusting the server
  if [ -s "$t/server-chain.pem" ] && openssl x509 -checkend 86400 -noout -in "$t/server.pem" >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$t"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj '/CN=shenbao mailstack test CA' -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj '/CN=localhost' -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
  # a leaf, not the CA itself: rustls/webpki rejects a CA certificate used as end entity
  cat > "$t/leaf.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:mx.example.test, IP:127.0.0.1, IP:::1
EOF
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -days 30 -extfile "$t/leaf.ext" -out "$t/server.pem" 2>/dev/null
  cat "$t/server.pem" "$t/ca.pem" > "$t/server-chain.pem"
  chmod 600 "$t"/*.key
  chmod 644 "$t/ca.pem"
}

write_users() {
  local u pw=$DIR/dovecot/users
  : > "$pw"; : > "$PF_CONF/vmailbox"
  for u in "${USER_NAMES[@]}"; do
    # passwd-file: user:password:uid:gid:gecos:home:shell:extra (uid/gid/home come from default_fields)
    printf '%s@%s:{PLAIN}%s-pw::::::\n' "$u" "$DOMAIN" "$u" >> "$pw"
    # Maildir relative to virtual_mailbox_base; the trailing / means Maildir format.
    # Must match Dovecot's home ($DIR/mail/%d/%n) + mail_location (~/Maildir).
    printf '%s@%s %s/%s/Maildir/\n' "$u" "$DOMAIN" "$DOMAIN" "$u" >> "$PF_CONF/vmailbox"
  done
  # the auth process runs as user dovecot
  chown root:dovecot "$pw"; chmod 640 "$pw"
}

write_dovecot_conf() {
  local listen=127.0.0.1
  have_ipv6_lo && listen='127.0.0.1, ::1'   # '::1' is fatal on hosts without IPv6 loopback
  cat > "$DC_CONF" <<EOF
# generated by shenbao scripts/mailstack.sh - loopback-only TEST server with fixed passwords
instance_name = shenbao-mailstack
base_dir = $DC_RUN
state_dir = $DIR/dovecot/state
log_path = $DIR/log/dovecot.log
protocols = imap lmtp
listen = $listen
hostname = mx.$DOMAIN
shutdown_clients = yes
default_vsz_limit = 1G

ssl = yes
ssl_cert = <$DIR/tls/server-chain.pem
ssl_key = <$DIR/tls/server.key
ssl_min_protocol = TLSv1.2

# LOGIN/AUTHENTICATE PLAIN without TLS on the plain port (loopback counts as secured anyway)
disable_plaintext_auth = no
auth_mechanisms = plain login
# "branch1" logs in as branch1@$DOMAIN; user names are case-insensitive
auth_default_realm = $DOMAIN
auth_username_format = %Lu
# Negative-login tests must not slow down the rest: no 2 s failure delay (2.3 still answers a
# failure after ~0.5 s), and no anvil auth penalty, see service anvil below.
auth_failure_delay = 0 secs
auth_verbose = yes

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DIR/dovecot/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $DIR/dovecot/users
  default_fields = uid=$VMAIL gid=$VMAIL home=$DIR/mail/%d/%n
}

mail_location = maildir:~/Maildir
first_valid_uid = 100
mail_fsync = never
# IDLE: changes arrive through inotify; this is the fallback poll, keep it short for tests
mailbox_idle_check_interval = 1 secs

namespace inbox {
  inbox = yes
  prefix =
  separator = /
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
}

protocol imap {
  # tests open many parallel connections as the same user from 127.0.0.1 (default 10)
  mail_max_userip_connections = 100
}

service imap-login {
  inet_listener imap {
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = $IMAPS_PORT
    ssl = yes
  }
  # one login process serves many connections: cheaper logins for benchmarks
  service_count = 0
  process_min_avail = 1
}

# Without this, a few failed logins make EVERY login from 127.0.0.1 (also a correct one) wait
# 2-15 s for the next ~30 s. auth disables the penalty when this socket does not exist.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}

service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
protocol lmtp {
  postmaster_address = postmaster@$DOMAIN
  recipient_delimiter = +
  # Pigeonhole: runs ~/.dovecot.sieve at delivery (only the SIEVE_USERS have one)
  mail_plugins = \$mail_plugins sieve
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
# where Sieve vacation replies (and redirects) go out: our own Postfix, never sendmail
submission_host = 127.0.0.1:$SMTP_PORT
EOF
}

# The Sieve users' homes and active scripts (vacation1: an out-of-office auto-responder).
write_sieve() {
  local u home
  for u in "${SIEVE_USERS[@]}"; do
    home=$DIR/mail/$DOMAIN/$u
    # the domain directory too: virtual(8) (as vmail) creates the other users' homes in it
    install -d -o "$VMAIL" -g "$VMAIL" -m 700 "$DIR/mail/$DOMAIN" "$home" "$home/sieve"
    cat > "$home/sieve/vacation.sieve" <<'EOF'
require ["vacation"];
vacation :days 1 :subject "自动回复：休假中" "您好！我正在休假，暂时无法处理邮件，回来后会尽快回复。";
EOF
    ln -sfn sieve/vacation.sieve "$home/.dovecot.sieve"
    chown -h "$VMAIL:$VMAIL" "$home/sieve/vacation.sieve" "$home/.dovecot.sieve"
  done
}

write_postfix_conf() {
  local uid gid delivery inet=ipv4 listeners
  uid=$(id -u "$VMAIL"); gid=$(id -g "$VMAIL")
  case $DELIVERY in
    virtual) delivery="virtual_transport = virtual
virtual_mailbox_base = $DIR/mail
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = 100
# 0 = unlimited; virtual(8) dies at startup if this is below message_size_limit
virtual_mailbox_limit = 0
smtputf8_enable = yes" ;;
    # Dovecot 2.3 LMTP does not speak SMTPUTF8: Postfix would bounce UTF-8 headers with 5.6.7
    lmtp) delivery="virtual_transport = lmtp:unix:$DC_RUN/lmtp
smtputf8_enable = no" ;;
    *) die "MAILSTACK_DELIVERY must be 'virtual' or 'lmtp', not '$DELIVERY'" ;;
  esac
  listeners="127.0.0.1:$SMTP_PORT inet n       -       n       -       -       smtpd"
  if have_ipv6_lo; then
    inet=all
    listeners+=$'\n'"[::1]:$SMTP_PORT inet n       -       n       -       -       smtpd"
  fi
  cat > "$PF_CONF/main.cf" <<EOF
# generated by shenbao scripts/mailstack.sh - loopback-only TEST server, relays nowhere
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $DIR/postfix-data
# postlogd writes the log; a maillog_file outside /var needs its prefix allowed explicitly
maillog_file = $DIR/log/postfix.log
maillog_file_prefixes = $DIR/log
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.$DOMAIN
mydomain = $DOMAIN
myorigin = \$mydomain
mydestination =
inet_interfaces = loopback-only
inet_protocols = $inet
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_banner = \$myhostname ESMTP shenbao-mailstack
relayhost =
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
biff = no

# @$DOMAIN: known users only (unknown -> 550 at RCPT); intake+tag@ goes to intake@
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = texthash:$PF_CONF/vmailbox
recipient_delimiter = +
$delivery

# the Sieve users go to Dovecot LMTP (their script runs there), everyone else as above
transport_maps = texthash:$PF_CONF/transport

# everything addressed outside $DOMAIN (and postmaster@ etc.) lands in catchall@$DOMAIN
virtual_alias_maps = regexp:$PF_CONF/catchall.regexp
# must be empty: it defaults to \$virtual_alias_maps, whose negated regexp would then claim
# $DOMAIN itself and reject every real user ("User unknown in virtual alias table")
virtual_alias_domains =
# belt and braces: whatever still is not local bounces instead of touching the network
default_transport = error:5.7.1 shenbao-mailstack: outbound delivery disabled
relay_transport = error:5.7.1 shenbao-mailstack: outbound delivery disabled
smtp_dns_support_level = disabled
smtpd_peername_lookup = no

message_size_limit = $SIZE_LIMIT
# tests and benchmarks: no artificial slowdowns
in_flow_delay = 0s
smtpd_error_sleep_time = 0s
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 1000
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 30s

smtpd_tls_security_level = may
smtpd_tls_chain_files = $DIR/tls/server.key, $DIR/tls/server-chain.pem
EOF
  cat > "$PF_CONF/master.cf" <<EOF
# service   type  private unpriv  chroot  wakeup  maxproc command
$listeners
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
tlsmgr     unix  -       -       n       1000?   1       tlsmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
lmtp       unix  -       -       n       -       -       lmtp
virtual    unix  -       n       n       -       -       virtual
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
EOF
  local u
  : > "$PF_CONF/transport"
  for u in "${SIEVE_USERS[@]}"; do
    printf '%s@%s lmtp:unix:%s/lmtp\n' "$u" "$DOMAIN" "$DC_RUN" >> "$PF_CONF/transport"
  done
  local d=${DOMAIN//./\\.}
  cat > "$PF_CONF/catchall.regexp" <<EOF
# first match wins; a leading ! matches when the expression does NOT match
/^(postmaster|abuse|root|mailer-daemon)@$d\$/ catchall@$DOMAIN
!/@$d\$/ catchall@$DOMAIN
EOF
  # Postfix re-reads main.cf and every regexp/texthash file until it is ~2 s old ("pausing to let
  # ... cool down"); back-dating them saves ~2 s per start.
  touch -d '-1 minute' "$PF_CONF"/*
}

prepare_dir() {
  local keep=$1
  [ "$keep" = 1 ] || wipe_dir
  mkdir -p "$DIR"/{dovecot/state,run,log,mail} "$PF_CONF"
  : > "$MARKER"
  chmod 755 "$DIR" "$DIR/run" "$DIR/mail"
  chown "$VMAIL:$VMAIL" "$DIR/mail"
  # Postfix master refuses a data_directory not owned by mail_owner
  install -d -o postfix -g postfix -m 700 "$DIR/postfix-data"
  write_tls
  write_users
  write_sieve
  write_dovecot_conf
  write_postfix_conf
  doveconf -c "$DC_CONF" -n >/dev/null 2>"$DIR/log/doveconf.err" ||
    { cat "$DIR/log/doveconf.err" >&2; die "generated dovecot.conf is invalid"; }
}

# ---------------------------------------------------------------- daemons

configured() {
  if [ ! -s "$DC_CONF" ] || [ ! -s "$PF_CONF/main.cf" ]; then die "$DIR is not set up: run '$0 start' first"; fi
}

ports_free() {
  local p
  for p in "$@"; do
    if port_open "$p"; then log "127.0.0.1:$p is already in use (another mail server or MAILSTACK_DIR?)"; return 1; fi
  done
}

start_dovecot() {
  if pidfile_alive "$DC_PID"; then log "dovecot: already running (pid $(pid_of "$DC_PID"))"; return 0; fi
  rm -f "$DC_PID"
  ports_free "$IMAP_PORT" "$IMAPS_PORT" || return 1
  # never inherit the caller's stdout/stderr (a 'start | tail' would hang) nor the lock fd
  dovecot -c "$DC_CONF" </dev/null >>"$DIR/log/dovecot-start.log" 2>&1 9>&- ||
    { tail -n 5 "$DIR/log/dovecot-start.log" "$DIR/log/dovecot.log" >&2 || true; return 1; }
  wait_for "$START_TIMEOUT" banner_ok "$IMAP_PORT" '* OK' ||
    { log "IMAP does not answer on $IMAP_PORT, see $DIR/log/dovecot.log"; return 1; }
  wait_for "$START_TIMEOUT" port_open "$IMAPS_PORT" ||
    { log "IMAPS does not listen on $IMAPS_PORT"; return 1; }
}

# The queue layout 'postfix start' would create (post-install create-missing), same owners/modes.
make_postfix_queue() {
  local q=$PF_QUEUE
  install -d -o root -g root -m 755 "$q" "$q/pid"
  install -d -o postfix -g root -m 700 "$q"/{active,bounce,corrupt,defer,deferred,flush,hold,incoming,private,saved,trace}
  install -d -o postfix -g postdrop -m 730 "$q/maildrop"
  install -d -o postfix -g postdrop -m 710 "$q/public"
}

start_postfix() {
  if pidfile_alive "$PF_PID"; then log "postfix: already running (pid $(pid_of "$PF_PID"))"; return 0; fi
  ports_free "$SMTP_PORT" || return 1
  # 'postfix start' spends ~0.3 s in its integrity check (post-install create-missing). The
  # queue layout is ours and the config is generated, so skip it once via the documented
  # $queue_directory/quick-start flag; should that start fail, retry with the full check.
  make_postfix_queue
  : > "$PF_QUEUE/quick-start"
  # -w: wait until master is up. The daemon must not inherit our stdout/stderr or the lock fd.
  if ! postfix -c "$PF_CONF" start </dev/null >>"$DIR/log/postfix-start.log" 2>&1 9>&-; then
    rm -f "$PF_QUEUE/quick-start"
    log "postfix: quick start failed, retrying with the full integrity check"
    postfix -c "$PF_CONF" start </dev/null >>"$DIR/log/postfix-start.log" 2>&1 9>&- ||
      { tail -n 5 "$DIR/log/postfix-start.log" "$DIR/log/postfix.log" >&2 || true; return 1; }
  fi
  wait_for "$START_TIMEOUT" banner_ok "$SMTP_PORT" 220 ||
    { log "SMTP does not answer on $SMTP_PORT, see $DIR/log/postfix.log"; return 1; }
}

# stop_daemon NAME PIDFILE LINGER PORT...: TERM the master, wait until it, every process of its
# session and its listening ports are gone; KILL what is left after 5 s.
# LINGER=1 (Dovecot): on TERM the Dovecot master stops all its children, then sends SIGQUIT to
# its log process and sleeps a hard-coded 1 s, listeners still open, before it exits. When only
# the log process is left, nothing remains to be cleaned up: the master is killed instead of
# waited for (stop ~1.1 s -> ~0.1 s).
stop_daemon() {
  local name=$1 pidfile=$2 linger=$3; shift 3
  local pid t0; t0=$(now_us)
  pid=$(pid_of "$pidfile") || pid=
  if [ -z "$pid" ] || ! alive "$pid"; then
    rm -f "$pidfile"; log "$name: not running"; return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if [ "$linger" = 1 ]; then
    # Dovecot 2.3 leaves connected client sessions (an imap process in IDLE or in the middle
    # of a FETCH) running until the 5 s KILL below, shutdown_clients = yes notwithstanding.
    # TERM them as a shutdown should: they answer "* BYE Server shutting down." and exit.
    local m comm
    for m in $(session_members "$pid"); do
      [ "$m" = "$pid" ] && continue
      read -r comm 2>/dev/null < "/proc/$m/comm" || continue
      case $comm in imap|imap-login|lmtp) kill -TERM "$m" 2>/dev/null || true ;; esac
    done
  fi
  gone() {
    local p members
    members=$(session_members "$pid")
    if alive "$pid"; then
      if [ "$linger" = 1 ]; then
        local m comm lone=1
        for m in $members; do
          [ "$m" = "$pid" ] && continue
          read -r comm 2>/dev/null < "/proc/$m/comm" || continue
          [ "$comm" = log ] || { lone=0; break; }
        done
        [ $lone = 1 ] && kill -KILL "$pid" 2>/dev/null
      fi
      return 1
    fi
    [ -z "$members" ] || return 1
    for p in "$@"; do ! port_open "$p" || return 1; done
  }
  if ! wait_for 5 gone "$@"; then
    log "$name: still there after 5 s, sending KILL to session $pid"
    local m
    for m in $pid $(session_members "$pid"); do kill -KILL "$m" 2>/dev/null || true; done
    wait_for 5 gone "$@" || die "$name: could not stop pid $pid"
  fi
  rm -f "$pidfile"
  log "$name: stopped pid $pid in $(since "$t0")s"
}

stop_dovecot() { stop_daemon dovecot "$DC_PID" 1 "$IMAP_PORT" "$IMAPS_PORT"; }
stop_postfix() { stop_daemon postfix "$PF_PID" 0 "$SMTP_PORT"; }

healthy() {
  pidfile_alive "$DC_PID" && pidfile_alive "$PF_PID" &&
    banner_ok "$IMAP_PORT" '* OK' && port_open "$IMAPS_PORT" && banner_ok "$SMTP_PORT" 220
}

# ---------------------------------------------------------------- commands

cmd_start() {
  need_root start
  check_dir
  local t0 keep=${MAILSTACK_KEEP:-0}; t0=$(now_us)
  ensure_installed
  take_lock
  t0=$(now_us)
  if [ "$keep" = 1 ] && healthy; then
    log "already running and healthy, kept (MAILSTACK_KEEP=1)"
    cmd_env; return 0
  fi
  if pidfile_alive "$DC_PID" || pidfile_alive "$PF_PID"; then
    log "stopping the running stack first"
    stop_postfix; stop_dovecot
  fi
  prepare_dir "$keep"
  if ! start_dovecot || ! start_postfix; then
    log "start failed; stopping whatever came up"
    stop_postfix || true; stop_dovecot || true
    exit 1
  fi
  log "started in $(since "$t0")s: dovecot pid $(pid_of "$DC_PID"), postfix pid $(pid_of "$PF_PID"), dir $DIR"
  cmd_env
}

cmd_stop() {
  need_root stop
  take_lock
  local t0; t0=$(now_us)
  stop_postfix
  stop_dovecot
  log "stopped in $(since "$t0")s"
}

cmd_status() {
  local rc=0
  if pidfile_alive "$DC_PID"; then echo "dovecot: running, pid $(pid_of "$DC_PID")"; else echo "dovecot: not running"; rc=1; fi
  if pidfile_alive "$PF_PID"; then echo "postfix: running, pid $(pid_of "$PF_PID")"; else echo "postfix: not running"; rc=1; fi
  if banner_ok "$IMAP_PORT" '* OK'; then echo "imap  127.0.0.1:$IMAP_PORT: answers"; else echo "imap  127.0.0.1:$IMAP_PORT: no banner"; rc=1; fi
  if port_open "$IMAPS_PORT"; then echo "imaps 127.0.0.1:$IMAPS_PORT: listening"; else echo "imaps 127.0.0.1:$IMAPS_PORT: closed"; rc=1; fi
  if banner_ok "$SMTP_PORT" 220; then echo "smtp  127.0.0.1:$SMTP_PORT: answers"; else echo "smtp  127.0.0.1:$SMTP_PORT: no banner"; rc=1; fi
  return $rc
}

cmd_env() {
  local u users=""
  for u in "${USER_NAMES[@]}"; do users+="${users:+ }$u@$DOMAIN:$u-pw"; done
  cat <<EOF
export MAILSTACK_DIR='$DIR'
export MAILSTACK_HOST=127.0.0.1
export MAILSTACK_IMAP_HOST=127.0.0.1 MAILSTACK_IMAP_PORT=$IMAP_PORT MAILSTACK_IMAPS_PORT=$IMAPS_PORT
export MAILSTACK_SMTP_HOST=127.0.0.1 MAILSTACK_SMTP_PORT=$SMTP_PORT
export MAILSTACK_CA_PEM='$DIR/tls/ca.pem' MAILSTACK_TLS_NAME=localhost
export MAILSTACK_DOMAIN=$DOMAIN MAILSTACK_CATCHALL=catchall@$DOMAIN
export MAILSTACK_USERS='$users'
EOF
}

# fault injection: one daemon only, configs/mailboxes/queue stay as they are
one_daemon() {
  local action=$1 which=$2 t0
  need_root "$action-$which"
  configured
  take_lock
  t0=$(now_us)
  case $action in
    stop) "stop_$which" ;;
    start) "start_$which" || die "$which failed to start" ;;
    restart) "stop_$which"; "start_$which" || die "$which failed to start" ;;
  esac
  log "$action-$which done in $(since "$t0")s"
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  stop-dovecot|start-dovecot|restart-dovecot|stop-postfix|start-postfix|restart-postfix)
    one_daemon "${1%%-*}" "${1#*-}" ;;
  *)
    echo "usage: $0 install|start|stop|status|env|{stop,start,restart}-{dovecot,postfix}" >&2
    exit 2 ;;
esac
