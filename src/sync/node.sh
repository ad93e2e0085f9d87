# skiff sync: the node side (POSIX sh + GNU coreutils, findutils, sed, tar, gzip, rdiff).
# shellcheck shell=sh
# shellcheck disable=SC2154 # the inputs are set by skiff's prelude
#
# Run as `sh -s -- MODE` (script on stdin) or `sh -c SCRIPT sh MODE` (stdin is the upload
# stream). Inputs arrive as named shell variables set by a prelude that skiff puts before
# this script, each value quoted by skiff's one quoting function: first the contract's
# exit codes (`EXIT_*`, src/deploy/contract.rs), then the call's own inputs. Nothing here
# is built from user input; paths inside lists are NUL-separated data.
#
#   prepare  releases n base base_digest sigs
#                                     clone release BASE of RELEASES into .tmp-N/tree,
#                                     check it against BASE.manifest, make signatures
#   go       releases n base base_digest new_digest ctl data
#                                     prepare, then (if the base is what skiff expected)
#                                     upload from stdin in the same round trip
#   sigs     releases n sigs          signatures only (after a prepare that found the
#                                     cached base manifest stale)
#   upload   releases n base new_digest ctl data
#                                     apply the stream on stdin to .tmp-N, then publish
#
# releases: the releases folder (absolute). n: the new release number. base: the base
# release number or "". base_digest: the sha256 skiff expects of BASE.manifest ("" if it
# has none cached). new_digest: the sha256 of the new manifest. sigs: the signatures to
# make, one `BLOCK PATH` a line (PATH escaped as in a manifest: `%25`, `%0A`); the i-th
# line's is frame S<i>. ctl: `t:LEN` or `z:LEN`, the control archive at the head of stdin
# (plain or gzip tar, LEN bytes). data: 1 if data sections follow it: lines `t LEN` (a
# plain tar of LEN bytes), `z LEN` (a gzip tar), and `e 0`, the end. Without the end the
# stream was cut short (GNU tar accepts an archive cut at an entry boundary), so nothing
# is published.
#
# Output (stdout) is framed: `TAG LENGTH\n` then LENGTH bytes, repeated. Tags: M (base
# manifest, gzip), X (base paths missing from or different on this node, one escaped path a
# line), S<i> (signature of the i-th requested file), F (indices of failed deltas, and `m`
# if the manifest delta did not give the expected manifest), R
# (result: ready | stale | done | partial). Errors go to stderr with a non-zero exit:
# EXIT_SYNC_EXISTS release N exists, EXIT_SYNC_NO_BASE base missing,
# EXIT_SYNC_STAGING_GONE staging gone, EXIT_SYNC_MANIFEST manifest mismatch,
# EXIT_SYNC_CUT_SHORT data cut short; EXIT_SYNC_STALE (go mode) the base is not what skiff
# expected: frames say why, stdin was not read.
#
# Layout: RELEASES/N/ is a release tree, RELEASES/N.manifest its manifest, .tmp-N/ a sync
# in progress (tree/ the future release, ctl/ the control files, work/ temp files),
# .spare-N a hard-link clone of release N made and checked in the background right after N
# was published (under `flock RELEASES`), so the next sync from N starts without waiting
# for `cp -al` and the check (the critical path of a small change). Changes made to
# release N after that, in place (a chmod or an edit of a file shared by hard link), are
# not seen; extra and deleted files in N do not matter (the spare has its own folders).
# Only .tmp-N and .spare-* are ever written before the final two renames, and files shared
# with BASE by hard links are only ever unlinked or replaced by rename, never written in
# place.

set -eu
umask 022
LC_ALL=C
export LC_ALL

# inventory DIR OUT: kind, mode, size and escaped path of every entry of DIR, sorted (the
# manifest's lines without the content field; folder modes and sizes not compared).
inventory() {
  (cd -- "$1" && find . -mindepth 1 -printf '%y %m %s %P\0') |
    sed -z -e 's/^d [0-7]* [0-9]* /d 755 0 /' -e 's/%/%25/g' -e 's/\n/%0A/g' |
    tr '\0' '\n' | sort >"$2"
}
# wanted MANIFEST OUT: the same lines as the manifest says they should be.
wanted() {
  tail -n +2 "$1" | cut -d' ' -f1-3,5- | sort >"$2"
}
# check CLONE HAVE WANT MISSING: removes from CLONE what the manifest does not list and
# writes the escaped paths the manifest lists but CLONE lacks (or has otherwise) to MISSING.
check() {
  comm -13 "$2" "$3" | cut -d' ' -f4- >"$4"
  comm -23 "$2" "$3" | cut -d' ' -f4- | tr '\n' '\0' |
    sed -z -e 's/%0A/\n/g' -e 's/%25/%/g' | (cd -- "$1" && xargs -0 -r rm -rf --)
}
# spare N: in the background, under the lock of R, a checked hard-link clone of release N
# for the next sync: .spare-N (the tree) and .spare-N.missing (normally empty).
spare() {
  exec 9<.
  flock 9
  S=.spare-$1
  rm -rf -- "$S" "$S.part" "$S.missing" "$S.work"
  mkdir -- "$S.work"
  wanted "$1.manifest" "$S.work/want" &
  cp -al -- "$1" "$S.part"
  inventory "$S.part" "$S.work/have"
  wait $!
  check "$S.part" "$S.work/have" "$S.work/want" "$S.missing"
  rm -rf -- "$S.work"
  mv -T -- "$S.part" "$S"
}
emit() { printf '%s %s\n' "$1" "$(wc -c <"$2")"; cat -- "$2"; }
say() { printf '%s %s\n%s' "$1" "${#2}" "$2"; }
die() { code=$1; shift; printf '%s\n' "$*" >&2; exit "$code"; }

prepare() {
  if ! cd -- "$releases" 2>/dev/null; then
    mkdir -p -- "$releases"
    cd -- "$releases"
  fi
  if [ -e "$n" ] || [ -L "$n" ]; then
    die "$EXIT_SYNC_EXISTS" "release $n already exists in $releases"
  fi
  # Wait for a spare clone still being made (it holds the lock of R), then remove the
  # leftovers of interrupted syncs (the caller holds the app's deploy lock) and spares of
  # other releases. Without flock (or if the wait times out) no spare is used.
  SPARE=
  if [ -n "$base" ] && command -v flock >/dev/null 2>&1 && flock -w 60 . true; then
    SPARE=.spare-$base
  fi
  for t in .tmp-* .spare-*; do
    if [ -e "$t" ] && [ "$t" != "$SPARE" ] && [ "$t" != "$SPARE.missing" ]; then
      rm -rf -- "$t"
    fi
  done
  mkdir -- "$T" "$W"
  STALE=0
  if [ -z "$base" ]; then
    mkdir -- "$T/tree"
    return 0
  fi
  if [ ! -d "$base" ] || [ ! -f "$base.manifest" ]; then
    die "$EXIT_SYNC_NO_BASE" "base release $base not found in $releases (need $base/ and $base.manifest)"
  fi
  # The clone, checked against B's manifest without hashing: entries the manifest does
  # not list (files a running app or a build step left in B) are removed; entries missing
  # or different (kind, mode, size) are reported so skiff sends them whole. A spare was
  # checked when it was made; otherwise B is listed while it is cloned (both mostly
  # system calls: two cores do them side by side).
  if [ -n "$SPARE" ] && [ -d "$SPARE" ] && [ -f "$SPARE.missing" ]; then
    mv -- "$SPARE" "$T/tree"
    mv -- "$SPARE.missing" "$W/missing"
  else
    if [ -n "$SPARE" ]; then rm -rf -- "$SPARE" "$SPARE.missing"; fi
    wanted "$base.manifest" "$W/want" &
    want=$!
    inventory "$base" "$W/have" &
    have=$!
    cp -al -- "$base" "$T/tree"
    wait "$have"
    wait "$want"
    check "$T/tree" "$W/have" "$W/want" "$W/missing"
  fi
  got=$(sha256sum <"$base.manifest")
  if [ "${got%% *}" != "$base_digest" ]; then
    gzip -1c <"$base.manifest" >"$W/m.gz"
    emit M "$W/m.gz"
    STALE=1
  fi
  if [ -s "$W/missing" ]; then
    emit X "$W/missing"
    STALE=1
  fi
}

# signatures: frame S<i> for the i-th line of $sigs whose file the clone has (regular).
signatures() {
  i=0
  while IFS= read -r line; do
    if [ -z "$line" ]; then continue; fi
    p=${line#* }
    case $p in
      *%*)
        p=$(printf '%s' "$p" | sed -e 's/%0A/\n/g' -e 's/%25/%/g'; echo x)
        p=${p%x}
        ;;
    esac
    f=$T/tree/$p
    if [ -f "$f" ] && [ ! -L "$f" ]; then
      rm -f -- "$W/s$i"
      rdiff -H md4 -R rollsum -b "${line%% *}" -S 8 signature "$f" "$W/s$i"
      emit "S$i" "$W/s$i"
    fi
    i=$((i + 1))
  done <<EOF
$sigs
EOF
}

upload() {
  cd -- "$releases"
  if [ ! -d "$T/tree" ]; then
    die "$EXIT_SYNC_STAGING_GONE" "the staging folder $releases/$T is gone (did another sync start?)"
  fi
  A=$releases
  C=$T/ctl
  if [ -e "$C" ]; then rm -rf -- "$C"; fi
  if [ -d "$W" ]; then mkdir -- "$C"; else mkdir -p -- "$C" "$W"; fi
  case ${ctl%%:*} in
    z) head -c "${ctl#*:}" | tar -xzf - -C "$C" ;;
    *) head -c "${ctl#*:}" | tar -xf - -C "$C" ;;
  esac
  # Removed first: deleted entries, and entries sent whole that the clone has (GNU tar
  # would unlink a file before extracting over it, but not a folder of another kind).
  if [ -s "$C/rm" ]; then
    (cd "$T/tree" && xargs -0 rm -rf -- <"$A/$C/rm")
  fi
  if [ "$data" = 1 ]; then
    while :; do
      if ! read -r kind len; then
        die "$EXIT_SYNC_CUT_SHORT" "the upload stream for release $n ended early"
      fi
      case $kind in
        t) head -c "$len" | tar -xpf - --no-same-owner -C "$T/tree" ;;
        z) head -c "$len" | tar -xzpf - --no-same-owner -C "$T/tree" ;;
        e) break ;;
        *) die "$EXIT_SYNC_CUT_SHORT" "the upload stream for release $n is damaged" ;;
      esac
    done
  fi
  # Exec bit changes: a copy gets the new mode and replaces the shared hard link.
  for m in 644 755; do
    if [ -s "$C/chmod$m" ]; then
      # shellcheck disable=SC2016 # the inner sh expands them
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
    if [ "${got%% *}" != "$new_digest" ]; then
      die "$EXIT_SYNC_MANIFEST" "the new manifest for release $n has sha256 ${got%% *}, expected $new_digest"
    fi
  elif ! rdiff patch "$base.manifest" "$C/manifest.delta" "$T/manifest" 2>"$W/m.err" ||
    ! got=$(sha256sum <"$T/manifest") || [ "${got%% *}" != "$new_digest" ]; then
    printf 'm ' >>"$W/failed"
  fi
  if [ -s "$W/failed" ]; then
    emit F "$W/failed"
    say R partial
    return 0
  fi
  # Publish: the release appears whole or not at all.
  sync -f "$T/tree" 2>/dev/null || sync
  mv -f -- "$T/manifest" "$n.manifest"
  mv -T -- "$T/tree" "$n"
  rm -rf -- "$T"
  # The spare clone for the next sync, in the background (it outlives this session).
  if command -v flock >/dev/null 2>&1; then
    (spare "$n") </dev/null >/dev/null 2>&1 &
  fi
  say R "done"
}

T=.tmp-$n
W=$T/work
case ${1-} in
  prepare)
    prepare
    if [ "$STALE" = 0 ]; then signatures; fi
    say R ready
    ;;
  go)
    prepare
    if [ "$STALE" = 1 ]; then
      # Not exit 0: the rest of stdin is left unread, which the client then expects.
      say R stale
      exit "$EXIT_SYNC_STALE"
    fi
    upload
    ;;
  sigs)
    cd -- "$releases"
    signatures
    say R ready
    ;;
  upload)
    upload
    ;;
  *) die "$EXIT_USAGE" "unknown mode ${1-}" ;;
esac
