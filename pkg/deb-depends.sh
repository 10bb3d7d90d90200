#!/usr/bin/env bash
# The Depends: value of the .deb for a shared object: the packages holding
# the libraries it links.
#
#   pkg/deb-depends.sh SO      (run from the folder holding debian/control)
#
# With dpkg-shlibdeps (dpkg-dev) the versions are those the symbols need.
# Without it, or with KUSTOMER_DEB_NO_SHLIBDEPS=1 (the test compares the
# two), each library named in the object's NEEDED entries is found with
# ldd and its package with dpkg -S, without versions.
set -euo pipefail
so=$1

if [ -z "${KUSTOMER_DEB_NO_SHLIBDEPS:-}" ] && command -v dpkg-shlibdeps >/dev/null; then
  out=$(dpkg-shlibdeps -O "$so") || exit 1
  # shlibs:Depends=libc6 (>= 2.33), ...
  printf '%s\n' "${out#shlibs:Depends=}"
  exit 0
fi

# Only the direct dependencies: ldd lists the whole closure.
needed=$(LC_ALL=C readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
pkgs=()
for lib in $needed; do
  path=$(ldd "$so" | awk -v l="$lib" '$1 == l && $2 == "=>" { print $3; exit }')
  [ -n "$path" ] || { echo "deb-depends: $lib: not found by ldd" >&2; exit 1; }
  # A merged /usr lists the library under /lib, dpkg under /usr/lib (or
  # the other way): try each spelling.
  pkg=""
  for p in "$path" "/usr$path" "${path#/usr}" "$(readlink -f "$path")"; do
    pkg=$(dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$pkg" ] && break
  done
  [ -n "$pkg" ] || { echo "deb-depends: $path: no package holds it" >&2; exit 1; }
  pkgs+=("$pkg")
done
printf '%s\n' "${pkgs[@]}" | LC_ALL=C sort -u | paste -sd, - | sed 's/,/, /g'
