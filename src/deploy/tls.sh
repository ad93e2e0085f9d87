#!/bin/sh
# skiff's TLS steps on a node, fed to `sh -s` by `skiff update` ([tls] acme), `skiff tls
# add` and `skiff tls renew HOST` (src/deploy/tls.rs). Inputs arrive as named shell variables
# in a prelude on stdin (a private key among them: never in argv), with the contract
# (src/deploy/contract.rs, `tls_prelude`): STAGING NODE EXIT_USAGE EXIT_NGINX EXIT_ACME
# NODE_EXIT_TEST NODE_EXIT_ACME. The files are handed to skiff-node in a private folder
# under $STAGING, removed when the step ends.
#
#   op=acme     app domains account ca site relay_conf relay force
#                                     order (or keep) the certificate: skiff-node tls-acme
#   op=install  app cert key site wildcard
#                                     a custom certificate: skiff-node tls-install
#   op=site     app site site_wildcard
#                                     the HTTPS server again ([tls] without acme):
#                                     skiff-node tls-site
#   op=renew    app                   skiff-node tls-renew (certbot --force-renewal)
#   op=info                           skiff-node tls-info: `tls APP SOURCE NOTAFTER STATUS`
#   op=remove   app                   skiff-node tls-remove (destroy-app)
#
# shellcheck disable=SC2154 # the inputs are set by skiff's prelude
set -eu
umask 077
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

die() { echo "skiff: $1" >&2; exit "${2:-1}"; }

d=
cleanup() { if [ -n "$d" ]; then rm -rf "$d"; fi; }
trap cleanup EXIT

put() { # put FILE VALUE: VALUE into the handed-over folder, when not empty
  if [ -n "$2" ]; then printf '%s' "$2" >"$d/$1"; fi
}

case ${op:-} in
  acme | install | site)
    printf '%s' "$app" | grep -Eqx '[a-z][a-z0-9-]{0,31}' || die "bad app name: $app" "$EXIT_USAGE"
    d=$(mktemp -d "$STAGING/tls.XXXXXX")
    put site.conf "$site"
    if [ "$op" = acme ]; then
      put domains "$domains"
      put account "$account"
      put ca.pem "$ca"
      put relay.conf "$relay_conf"
      put relay "$relay"
      set -- tls-acme "$app" "$d"
      if [ "$force" = 1 ]; then set -- "$@" force; fi
    elif [ "$op" = site ]; then
      put site-wildcard.conf "$site_wildcard"
      set -- tls-site "$app" "$d"
    else
      put fullchain.pem "$cert"
      put privkey.pem "$key"
      if [ "$wildcard" = 1 ]; then : >"$d/wildcard"; fi
      set -- tls-install "$app" "$d"
    fi
    ;;
  renew)
    set -- tls-renew "$app"
    ;;
  info)
    set -- tls-info
    ;;
  remove)
    # a node set up before skiff had TLS has none to remove (and no tls-remove)
    grep -q '^  tls-remove)' "$NODE" || exit 0
    set -- tls-remove "$app"
    ;;
  *)
    die "unknown TLS step: ${op:-}" "$EXIT_USAGE"
    ;;
esac

rc=0
# as the deploy user: skiff-node through sudo -n (its sudoers rule); as root: directly
if [ "$(id -u)" = 0 ]; then "$NODE" "$@" || rc=$?; else sudo -n "$NODE" "$@" || rc=$?; fi
case $rc in
  0) ;;
  "$NODE_EXIT_TEST") exit "$EXIT_NGINX" ;;
  "$NODE_EXIT_ACME") exit "$EXIT_ACME" ;;
  *) exit "$rc" ;;
esac
