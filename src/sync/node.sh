# skiff sync: the node side (POSIX sh + GNU coreutils, findutils, sed, tar, gzip, rdiff).
#
# Run as `sh -s -- MODE ARGS` (script on stdin) or `sh -c SCRIPT sh MODE ARGS` (stdin is
# the upload stream). Every argument is data quoted by skiff's one quoting function;
# nothing here is built from user input. Paths inside lists are NUL-separated data.
#
#   prepare R N B D [BLOCK PATH]...   clone release B of folder R into R/.tmp-N/tree,
#                                     check it against B.manifest, make signatures
#   go      R N B D L DATA ND         prepare, then (if the base is what skiff expected)
#                                     upload from stdin in the same round trip; ND is
#                                     the sha256 of the new manifest
#   sigs    R N B D [BLOCK PATH]...   signatures only (after a prepare that found the
#                                     cached base manifest stale)
#   upload  R N B D L DATA            apply the stream on stdin to R/.tmp-N, then publish
#
# R: releases folder (absolute). N: new release number. B: base release number or "".
# D: in prepare, the sha256 skiff expects of B.manifest ("" if it has none cached); in
# upload, the sha256 of the new manifest. L: bytes of the control archive at the head of
# stdin. DATA: 1 if a data archive follows it.
#
# Output (stdout) is framed: `TAG LENGTH\n` then LENGTH bytes, repeated. Tags: M (base
# manifest, gzip), X (base paths missing from or different on this node, one escaped path a
# line), S<i> (signature of the i-th requested file), F (indices of failed deltas, and `m`
# if the manifest delta did not give the expected manifest), R
# (result: ready | stale | done | partial). Errors go to stderr with a non-zero exit:
# 3 release N exists, 4 base missing, 5 staging gone, 6 manifest mismatch.
#
# Layout: R/N/ is a release tree, R/N.manifest its manifest, R/.tmp-N/ a sync in progress
# (tree/ the future release, ctl/ the control files, work/ temp files). Only R/.tmp-N is
# ever written before the final two renames, and files shared with B by hard links are
# only ever unlinked or replaced by rename, never written in place.

set -eu
umask 022
LC_ALL=C
export LC_ALL

emit() { printf '%s %s\n' "$1" "$(wc -c <"$2")"; cat -- "$2"; }
say() { printf '%s %s\n%s' "$1" "${#2}" "$2"; }
die() { code=$1; shift; printf '%s\n' "$*" >&2; exit "$code"; }

prepare() {
  mkdir -p -- "$R"
  cd -- "$R"
  if [ -e "$N" ] || [ -L "$N" ]; then
    die 3 "release $N already exists in $R"
  fi
  # Leftovers of interrupted syncs (the caller holds the app's deploy lock).
  for t in .tmp-*; do
    if [ -e "$t" ]; then rm -rf -- "$t"; fi
  done
  mkdir -- "$T" "$W"
  STALE=0
  if [ -z "$B" ]; then
    mkdir -- "$T/tree"
    return 0
  fi
  if [ ! -d "$B" ] || [ ! -f "$B.manifest" ]; then
    die 4 "base release $B not found in $R (need $B/ and $B.manifest)"
  fi
  cp -al -- "$B" "$T/tree"
  got=$(sha256sum <"$B.manifest")
  if [ "${got%% *}" != "$D" ]; then
    gzip -1c <"$B.manifest" >"$W/m.gz"
    emit M "$W/m.gz"
    STALE=1
  fi
  # The clone against its manifest, without hashing: kind, mode, size and path of every
  # entry (folder modes and sizes are not compared). Extras (files a running app or a
  # build step left in B) are removed; missing or different entries are reported so
  # skiff sends them whole.
  (cd "$T/tree" && find . -mindepth 1 -printf '%y %m %s %P\0') |
    sed -z -e 's/^d [0-7]* [0-9]* /d 755 0 /' -e 's/%/%25/g' -e 's/\n/%0A/g' |
    tr '\0' '\n' | sort >"$W/have"
  sed -e '1d' -e 's/^\([a-z]\) \([0-7]*\) \([0-9]*\) [^ ]* /\1 \2 \3 /' "$B.manifest" |
    sort >"$W/want"
  comm -23 "$W/have" "$W/want" | cut -d' ' -f4- >"$W/extra"
  comm -13 "$W/have" "$W/want" | cut -d' ' -f4- >"$W/missing"
  if [ -s "$W/extra" ]; then
    tr '\n' '\0' <"$W/extra" | sed -z -e 's/%0A/\n/g' -e 's/%25/%/g' |
      (cd "$T/tree" && xargs -0 rm -rf --)
  fi
  if [ -s "$W/missing" ]; then
    emit X "$W/missing"
    STALE=1
  fi
}

signatures() {
  i=0
  while [ $# -ge 2 ]; do
    f=$T/tree/$2
    if [ -f "$f" ] && [ ! -L "$f" ]; then
      rm -f -- "$W/s$i"
      rdiff -H md4 -R rollsum -b "$1" -S 8 signature "$f" "$W/s$i"
      emit "S$i" "$W/s$i"
    fi
    i=$((i + 1))
    shift 2
  done
}

upload() {
  cd -- "$R"
  if [ ! -d "$T/tree" ]; then
    die 5 "the staging folder $R/$T is gone (did another sync start?)"
  fi
  A=$(pwd)
  C=$T/ctl
  rm -rf -- "$C"
  mkdir -p -- "$C" "$W"
  head -c "$L" | tar -xzf - -C "$C"
  # Removed first: deleted entries, and entries sent whole that the clone has (GNU tar
  # would unlink a file before extracting over it, but not a folder of another kind).
  if [ -s "$C/rm" ]; then
    (cd "$T/tree" && xargs -0 rm -rf -- <"$A/$C/rm")
  fi
  if [ "$DATA" = 1 ]; then
    tar -xzpf - --no-same-owner -C "$T/tree"
  fi
  # Exec bit changes: a copy gets the new mode and replaces the shared hard link.
  for m in 644 755; do
    if [ -s "$C/chmod$m" ]; then
      (cd "$T/tree" && xargs -0 sh -c '
        m=$1 w=$2; shift 2
        for p in "$@"; do
          cp -p -- "$p" "$w/c" && chmod "$m" "$w/c" && mv -f -- "$w/c" "$p"
        done' sh "$m" "$A/$W" <"$A/$C/chmod$m")
    fi
  done
  # Deltas: patch the base copy into a temp file, check its sha256, rename over the link.
  : >"$W/failed"
  if [ -s "$C/deltas" ]; then
    while read -r i m s; do
      p=$(cat -- "$C/d$i.p"; echo x)
      p=${p%x}
      o=$W/d$i
      rm -f -- "$o"
      if rdiff patch "$T/tree/$p" "$C/d$i" "$o" 2>"$W/d$i.err" &&
        got=$(sha256sum <"$o") && [ "${got%% *}" = "$s" ]; then
        chmod "$m" "$o"
        mv -f -- "$o" "$T/tree/$p"
      else
        printf '%s ' "$i" >>"$W/failed"
      fi
    done <"$C/deltas"
  fi
  # The manifest (a delta that does not verify is reported like a failed file delta).
  rm -f -- "$T/manifest"
  if [ -f "$C/manifest" ]; then
    mv -f -- "$C/manifest" "$T/manifest"
    got=$(sha256sum <"$T/manifest")
    if [ "${got%% *}" != "$D" ]; then
      die 6 "the new manifest for release $N has sha256 ${got%% *}, expected $D"
    fi
  elif ! rdiff patch "$B.manifest" "$C/manifest.delta" "$T/manifest" 2>"$W/m.err" ||
    ! got=$(sha256sum <"$T/manifest") || [ "${got%% *}" != "$D" ]; then
    printf 'm ' >>"$W/failed"
  fi
  if [ -s "$W/failed" ]; then
    emit F "$W/failed"
    say R partial
    return 0
  fi
  # Publish: the release appears whole or not at all.
  sync -f "$T/tree" 2>/dev/null || sync
  mv -f -- "$T/manifest" "$N.manifest"
  mv -T -- "$T/tree" "$N"
  rm -rf -- "$T"
  say R done
}

MODE=$1 R=$2 N=$3 B=$4 D=$5
shift 5
T=.tmp-$N
W=$T/work
case $MODE in
  prepare)
    prepare
    if [ "$STALE" = 0 ]; then signatures "$@"; fi
    say R ready
    ;;
  go)
    L=$1 DATA=$2 ND=$3
    shift 3
    prepare
    if [ "$STALE" = 1 ]; then
      say R stale
      exit 0
    fi
    D=$ND
    upload
    ;;
  sigs)
    cd -- "$R"
    signatures "$@"
    say R ready
    ;;
  upload)
    L=$1 DATA=$2
    upload
    ;;
  *) die 2 "unknown mode $MODE" ;;
esac
