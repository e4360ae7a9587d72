#!/usr/bin/env bash
# scripts/install.sh - install shenbao as a systemd service (Debian 12 or any systemd distribution).
#
#   sudo scripts/install.sh                     build the release binary and install everything
#   scripts/install.sh --root DIR --binary F    install into DIR instead of / (tests, packaging):
#                                               no systemctl, the user only in DIR/etc/passwd
#
# Options:
#   --root DIR      install under DIR (like DESTDIR); nothing outside DIR is touched, and the
#                   commands that would change the running system are listed, not run
#   --prefix P      where the binary and docs go (default /usr/local: P/bin/shenbao)
#   --binary FILE   install this binary instead of building one with `cargo build --release`
#
# What it installs (owner, mode):
#   P/bin/shenbao                         root:root 0755
#   P/share/doc/shenbao/README.md         root:root 0644
#   /etc/shenbao/                         root:shenbao 0750  config, roster, templates
#   /etc/shenbao/shenbao.toml, roster.csv root:shenbao 0640  only when missing: never overwritten
#   /etc/shenbao/templates/*.j2           root:shenbao 0640  only the missing ones
#   /etc/shenbao/credentials/             root:root 0700     the passwords (imap, smtp), put by hand
#   /var/lib/shenbao/                     shenbao:shenbao 0700  database and archived mail
#   /etc/systemd/system/shenbao.service   root:root 0644
#   /etc/sysusers.d/shenbao.conf          root:root 0644     the system user shenbao (systemd-sysusers)
#
# Why a script and not `shenbao init --system`: the binary must be built and copied before it can
# run, creating a system user and installing a unit are root's work that a mail daemon should not
# carry code for, and a shell script can be read line by line before it is run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '%s\n' "$*"; }
die() { printf '安装失败：%s\n' "$*" >&2; exit 1; }

ROOT=""
PREFIX=/usr/local
BINARY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root 后面要写目录}; shift 2 ;;
    --root=*) ROOT=${1#--root=}; shift ;;
    --prefix) PREFIX=${2:?--prefix 后面要写目录}; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    --binary) BINARY=${2:?--binary 后面要写文件}; shift 2 ;;
    --binary=*) BINARY=${1#--binary=}; shift ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "不认识的参数 $1（可用：--root DIR、--prefix P、--binary FILE）" ;;
  esac
done
[ -z "${DESTDIR:-}" ] || [ -n "$ROOT" ] || ROOT=$DESTDIR
case "$PREFIX" in /*) ;; *) die "--prefix 必须是绝对路径，例如 /usr/local" ;; esac
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
  [ "$ROOT" != / ] || ROOT=""
fi
AS_ROOT=0
[ "$(id -u)" = 0 ] && AS_ROOT=1
[ -n "$ROOT" ] || [ "$AS_ROOT" = 1 ] || die "安装到本机需要 root 权限：请用 sudo scripts/install.sh 运行"

# What --root mode does not run, for the record (and the test).
WOULD=()
would() { WOULD+=("$*"); }

# 1. The binary.
if [ -z "$BINARY" ]; then
  command -v cargo >/dev/null || die "找不到 cargo：请先安装 Rust 工具链（见 README“环境准备”），或用 --binary 指定已编译好的 shenbao"
  say "编译 release 版本（cargo build --release，首次约需 10 分钟）……"
  cargo build --release --locked --bin shenbao
  BINARY=${CARGO_TARGET_DIR:-target}/release/shenbao
fi
[ -x "$BINARY" ] || die "$BINARY 不是可执行文件：请先编译，或用 --binary 指定 shenbao 的路径"

# 2. The service user, from a sysusers.d entry: systemd-sysusers creates it (in DIR/etc/passwd
#    with --root), and recreates it if it is ever missing.
install -d -m 0755 "$ROOT/etc/sysusers.d"
install -m 0644 deploy/shenbao.sysusers "$ROOT/etc/sysusers.d/shenbao.conf"
if command -v systemd-sysusers >/dev/null; then
  if [ -n "$ROOT" ]; then
    systemd-sysusers --root "$ROOT" >/dev/null 2>&1 \
      || die "systemd-sysusers --root $ROOT 没能创建用户 shenbao"
  else
    systemd-sysusers /etc/sysusers.d/shenbao.conf
  fi
elif [ -z "$ROOT" ]; then
  getent passwd shenbao >/dev/null \
    || useradd --system --user-group --home-dir /var/lib/shenbao --no-create-home \
         --shell /usr/sbin/nologin --comment "shenbao（申报）服务" shenbao
else
  die "找不到 systemd-sysusers（apt-get install systemd），--root 模式需要它在 $ROOT 中创建用户"
fi
if [ -n "$ROOT" ]; then
  uid=$(awk -F: '$1=="shenbao"{print $3}' "$ROOT/etc/passwd")
  gid=$(awk -F: '$1=="shenbao"{print $3}' "$ROOT/etc/group")
else
  uid=$(id -u shenbao); gid=$(id -g shenbao)
fi
[ -n "$uid" ] && [ -n "$gid" ] || die "没有找到用户 shenbao（$ROOT/etc/passwd）"
# Owners by number: with --root the user exists only in DIR/etc/passwd.
own() { # own OWNER:GROUP PATH… (numbers); without root, recorded instead
  if [ "$AS_ROOT" = 1 ]; then chown "$@"; else would chown "$@"; fi
}

# 3. Binary and docs.
install -d -m 0755 "$ROOT$PREFIX/bin" "$ROOT$PREFIX/share/doc/shenbao"
install -m 0755 "$BINARY" "$ROOT$PREFIX/bin/shenbao"
install -m 0644 README.md "$ROOT$PREFIX/share/doc/shenbao/README.md"
own 0:0 "$ROOT$PREFIX/bin/shenbao" "$ROOT$PREFIX/share/doc/shenbao/README.md"

# 4. Configuration: root owns it, the service's group may read it; existing files are kept.
ETC=$ROOT/etc/shenbao
install -d -m 0750 "$ETC" "$ETC/templates"
own "0:$gid" "$ETC" "$ETC/templates"
chmod 0750 "$ETC" "$ETC/templates"
install -d -m 0700 "$ETC/credentials"
own 0:0 "$ETC/credentials"
chmod 0700 "$ETC/credentials"
kept=()
put() { # put SOURCE DEST: a new config file, 0640 root:shenbao; an existing one is left alone
  if [ -e "$2" ]; then kept+=("${2#"$ROOT"}"); return; fi
  install -m 0640 "$1" "$2"
  own "0:$gid" "$2"
}
config=$(mktemp)
trap 'rm -f "$config"' EXIT
{
  printf '# 由 scripts/install.sh 安装：密码用 systemd 凭据（password_credential），数据在 /var/lib/shenbao。\n'
  sed -e 's|^password_env = "SHENBAO_IMAP_PASSWORD"|password_credential = "imap"|' \
      -e 's|^password_env = "SHENBAO_SMTP_PASSWORD"|password_credential = "smtp"|' \
      -e 's|^data_dir = "data"|data_dir = "/var/lib/shenbao"|' \
      -e 's|^# templates_dir = "templates"|templates_dir = "templates"|' \
      config/shenbao.example.toml
} > "$config"
for line in 'password_credential = "imap"' 'password_credential = "smtp"' \
            'data_dir = "/var/lib/shenbao"' 'templates_dir = "templates"'; do
  grep -qxF "$line" "$config" || die "config/shenbao.example.toml 已改动，找不到可改写为 $line 的一行：请同步修改 scripts/install.sh"
done
put "$config" "$ETC/shenbao.toml"
put config/roster.example.csv "$ETC/roster.csv"
for t in config/templates/*; do put "$t" "$ETC/templates/$(basename "$t")"; done

# 5. Data: only the service user can read it.
install -d -m 0755 "$ROOT/var/lib"
install -d -m 0700 "$ROOT/var/lib/shenbao"
own "$uid:$gid" "$ROOT/var/lib/shenbao"
chmod 0700 "$ROOT/var/lib/shenbao"

# 6. The unit (ExecStart follows --prefix).
install -d -m 0755 "$ROOT/etc/systemd/system"
sed -e "s|/usr/local/bin/shenbao|$PREFIX/bin/shenbao|" \
    -e "s|/usr/local/share/doc/shenbao|$PREFIX/share/doc/shenbao|" \
    deploy/shenbao.service > "$ROOT/etc/systemd/system/shenbao.service"
chmod 0644 "$ROOT/etc/systemd/system/shenbao.service"
own 0:0 "$ROOT/etc/systemd/system/shenbao.service"
if [ -n "$ROOT" ]; then
  would systemctl daemon-reload
else
  systemctl daemon-reload 2>/dev/null || say "注意：systemctl daemon-reload 没有成功（本机没有运行 systemd？），服务文件已装好。"
fi

# 7. What happens next, in the operator's words.
say ""
say "shenbao 已安装${ROOT:+到 $ROOT}：程序 $PREFIX/bin/shenbao，配置 /etc/shenbao，数据 /var/lib/shenbao，服务 shenbao.service。"
for k in "${kept[@]}"; do say "已存在，未覆盖：$k"; done
if [ ${#WOULD[@]} -gt 0 ]; then
  say "（--root 模式，以下命令没有执行）"
  for w in "${WOULD[@]}"; do say "  $w"; done
fi
cmd=shenbao
[ "$PREFIX" = /usr/local ] || [ "$PREFIX" = /usr ] || cmd=$PREFIX/bin/shenbao
cat <<EOF

接下来（以 root 身份运行，例如先 sudo -i）：
  1. 按本校情况修改配置（每一项都有中文注释）和支部名册：
       /etc/shenbao/shenbao.toml、/etc/shenbao/roster.csv
  2. 放入密码（不写在命令行上：命令会提示输入，输入时不显示）：
       (umask 077; read -rsp "IMAP 密码：" p; echo; printf %s "\$p" > /etc/shenbao/credentials/imap)
       (umask 077; read -rsp "SMTP 密码：" p; echo; printf %s "\$p" > /etc/shenbao/credentials/smtp)
  3. 检查配置，再实际登录一次 IMAP 和 SMTP：
       $cmd --config /etc/shenbao/shenbao.toml check-config
       $cmd --config /etc/shenbao/shenbao.toml check-config --probe
  4. 启动服务并设为开机自启，查看运行情况和日志：
       systemctl enable --now shenbao
       systemctl status shenbao
       journalctl -u shenbao -f
  日常查看以服务用户运行：runuser -u shenbao -- $cmd --config /etc/shenbao/shenbao.toml status
EOF
