# shellcheck shell=sh
# The system user a Python or Ruby app's processes run as (its slots, workers, cron jobs
# and `skiff run`), so one app cannot read another's environment, secrets or data. The
# same mapping as `names::app_user` in skiff (a unit test holds the two together):
# `app-NAME`, or for a name longer than 28 characters (user names stop at 32) its first
# 19 characters, a dash and 8 hex digits of its sha256. Sourced by skiff-node and
# skiff-run.
app_user_of() {
  if [ ${#1} -le 28 ]; then
    printf 'app-%s\n' "$1"
  else
    printf 'app-%.19s-%.8s\n' "$1" "$(printf '%s' "$1" | sha256sum)"
  fi
}

# run_user_of APP: the user APP's processes run as here: its own (made by `skiff-node
# app-dirs` for a Python or Ruby app), else www-data (PHP under mod_php, static sites)
run_user_of() {
  _u=$(app_user_of "$1")
  if getent passwd "$_u" | grep -q ":skiff app $1:"; then echo "$_u"; else echo www-data; fi
}
