# skiff: read and write the values of skiff's env files (POSIX sh, sourced).
# shellcheck shell=sh
#
# Env files (/etc/skiff/env/APP.env, a release's env/N.env and env/N.run) hold one
# KEY=VALUE line per variable, the value escaped so that any text fits on one line
# (src/deploy/env_file.rs): `\\` is a backslash, `\n` a newline, `\r` a carriage return;
# any other backslash stays as it is. Sourced by node.sh (release_env) and skiff-run.

# env_export LINE: exports one KEY=VALUE line, its value decoded
env_export() {
  _ek=${1%%=*} _ev=${1#*=}
  case $_ev in
    *\\*)
      _ev=$(printf '%s\n' "$_ev" | awk '{
        o = ""; s = $0
        while ((i = index(s, "\\")) > 0) {
          c = substr(s, i + 1, 1); o = o substr(s, 1, i - 1)
          if (c == "\\") o = o "\\"; else if (c == "n") o = o "\n"; else if (c == "r") o = o "\r"; else o = o "\\" c
          s = substr(s, i + 2)
        }
        printf "%s", o s
      }' && printf x) && _ev=${_ev%x}
      ;;
  esac
  export "$_ek=$_ev"
}

# env_encode: stdin as one env file value (what env_export decodes)
env_encode() {
  sed -e 's/\\/\\\\/g' -e 's/\r/\\r/g' | awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }'
}
