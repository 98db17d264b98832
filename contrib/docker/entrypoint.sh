#!/bin/sh
# cvsyncd's container entrypoint (POSIX sh; docs/container.md).
#
# Started as root, it prepares /config for the NAS account named by PUID and PGID, sets the
# UMASK, and then runs cvsyncd as that account (setpriv: no root left, no new privileges),
# replacing itself (exec), so that a stop signal reaches the daemon itself and it drains.
#
#   entrypoint.sh            the daemon: `cvsyncd run -c /config/config.toml`
#   entrypoint.sh health     the health check (`cvsyncd health`), as the same account
#   entrypoint.sh CMD ARG…   any other command (e.g. `cvsyncd check -c /config/config.toml`)
#
# First start with no /config/config.toml: a starter config is written there (inbox
# /data/inbox, outbox /data/outbox, the dashboard on port 8750 behind a generated
# password), the entrypoint says what to edit and waits to be stopped; nothing is uploaded
# before you have looked at it.
#
# Environment: PUID, PGID (default 1000), UMASK (default 022), TZ (a zone name such as
# Europe/Berlin), CLEANVOICE_API_KEY (instead of /config/api_key). CVSYNCD_CONFIG_DIR and
# CVSYNCD_DATA_DIR move /config and /data (the tests use temporary folders).
set -eu

CONFIG_DIR="${CVSYNCD_CONFIG_DIR:-/config}"
DATA_DIR="${CVSYNCD_DATA_DIR:-/data}"
CONFIG="$CONFIG_DIR/config.toml"
STATE_DIR="$CONFIG_DIR/state"
PUID="${PUID:-1000}"
PGID="${PGID:-1000}"
UMASK="${UMASK:-022}"
WEB_LISTEN="${CVSYNCD_WEB_LISTEN:-0.0.0.0:8750}"

say() {
  printf 'cvsyncd-entrypoint: %s\n' "$*" >&2
}

fail() {
  say "$*"
  exit 2
}

case "$PUID" in '' | *[!0-9]*) fail "PUID must be a number (a user id), not '$PUID'" ;; esac
case "$PGID" in '' | *[!0-9]*) fail "PGID must be a number (a group id), not '$PGID'" ;; esac
case "$UMASK" in
  [0-7][0-7][0-7] | [0-7][0-7][0-7][0-7]) ;;
  *) fail "UMASK must be octal digits such as 022 or 002, not '$UMASK'" ;;
esac
umask "$UMASK"
if [ -n "${TZ:-}" ] && [ ! -e "/usr/share/zoneinfo/$TZ" ]; then
  say "TZ=$TZ is not a time zone this image knows (e.g. Europe/Berlin); local times will be UTC"
fi
export HOME="$CONFIG_DIR"

ROOT=no
[ "$(id -u)" = 0 ] && ROOT=yes

# Run a command as PUID:PGID (as is, when not started as root).
as_user() {
  if [ "$ROOT" = yes ]; then
    setpriv --reuid="$PUID" --regid="$PGID" --clear-groups --no-new-privs -- "$@"
  else
    "$@"
  fi
}

exec_as_user() {
  if [ "$ROOT" = yes ]; then
    exec setpriv --reuid="$PUID" --regid="$PGID" --clear-groups --no-new-privs -- "$@"
  fi
  exec "$@"
}

if [ "${1:-}" = health ]; then
  # HEALTHCHECK: no set-up, only the check, as the daemon's own account (a root check
  # could leave root-owned files beside the state database)
  exec_as_user cvsyncd health -c "$CONFIG"
fi

# /config belongs to the NAS account: the folder itself, the state, and our own files
# in it. Media under /data are never chowned: they are yours.
prepare_config_dir() {
  mkdir -p "$CONFIG_DIR"
  [ "$ROOT" = yes ] || return 0
  # a share mounted with root squashed refuses chown: say so, and let cvsyncd tell
  # whether it can still read and write what it needs
  chown "$PUID:$PGID" "$CONFIG_DIR" || say "cannot give $CONFIG_DIR to $PUID:$PGID"
  if [ -d "$STATE_DIR" ]; then
    chown -R "$PUID:$PGID" "$STATE_DIR" || say "cannot give $STATE_DIR to $PUID:$PGID"
  fi
  for file in "$CONFIG" "$CONFIG_DIR/api_key" "$CONFIG_DIR/web_password"; do
    if [ -e "$file" ]; then
      chown "$PUID:$PGID" "$file" || say "cannot give $file to $PUID:$PGID"
    fi
  done
  # a key copied in over a network share is often readable by everyone, which cvsyncd
  # refuses: the key is only for the daemon's account
  for file in "$CONFIG_DIR/api_key" "$CONFIG_DIR/web_password"; do
    if [ -f "$file" ] && [ -n "$(find "$file" -perm /044)" ] && chmod 600 "$file"; then
      say "$file could be read by other users: made it readable by its owner only (chmod 600)"
    fi
  done
}

first_start() {
  say "no $CONFIG yet: writing a starter config"
  as_user mkdir -p "$STATE_DIR"
  if [ ! -e "$CONFIG_DIR/web_password" ]; then
    (
      umask 077
      od -An -N18 -tx1 /dev/urandom | tr -d ' \n' >"$CONFIG_DIR/web_password"
    )
    [ "$ROOT" = no ] || chown "$PUID:$PGID" "$CONFIG_DIR/web_password"
  fi
  set -- --api-key-file "$CONFIG_DIR/api_key"
  if [ -n "${CLEANVOICE_API_KEY:-}" ]; then
    set -- # the key comes from the environment
  fi
  as_user cvsyncd init -c "$CONFIG" --yes \
    --inbox "$DATA_DIR/inbox" --outbox "$DATA_DIR/outbox" --preset podcast --after move \
    --state-dir "$STATE_DIR" --web "$WEB_LISTEN" --web-password-file "$CONFIG_DIR/web_password" \
    "$@" >/dev/null
  for place in "$DATA_DIR/inbox" "$DATA_DIR/outbox"; do
    as_user mkdir -p "$place" || say "cannot make $place as user $PUID: is /data writable by it?"
  done
  say "wrote $CONFIG. Before the first real start:"
  if [ -z "${CLEANVOICE_API_KEY:-}" ]; then
    say "  1. put your Cleanvoice API key in $CONFIG_DIR/api_key (one line)"
  else
    say "  1. the API key comes from CLEANVOICE_API_KEY"
  fi
  say "  2. check the folders and the preset in $CONFIG (inbox $DATA_DIR/inbox, outbox $DATA_DIR/outbox)"
  say "  3. restart the container; the dashboard's password is in $CONFIG_DIR/web_password"
  say "waiting: nothing is processed until the container is restarted"
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM INT
  while :; do
    sleep 3600 &
    sleeper=$!
    wait "$sleeper" || true
  done
}

prepare_config_dir
if [ ! -e "$CONFIG" ]; then
  first_start
fi

if [ "$#" -eq 0 ]; then
  exec_as_user cvsyncd run -c "$CONFIG"
fi
if [ "$1" = run ]; then
  shift
  exec_as_user cvsyncd run -c "$CONFIG" "$@"
fi
exec_as_user "$@"
