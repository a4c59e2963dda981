#!/usr/bin/env bash
# CI: build the Debian package, check what it holds, install it with dpkg on this machine,
# and use the installed civikey as an operator would: --version, the man page, a list of the
# sample store, a closed pipe, bash completion of profile names. Runs unattended as root
# on a fresh Debian (installs cargo-deb, man-db and dpkg-dev when missing); removes the
# package again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "package-check.sh: installs a package with dpkg, so it runs as root (CI does)" >&2
  exit 1
fi
fail() {
  echo "package-check.sh: FAILED: $*" >&2
  exit 1
}

need_pkgs=()
command -v man >/dev/null || need_pkgs+=(man-db)
command -v dpkg-shlibdeps >/dev/null || need_pkgs+=(dpkg-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "package-check.sh: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi
if ! command -v cargo-deb >/dev/null; then
  echo "package-check.sh: installing cargo-deb" >&2
  nice cargo install cargo-deb --locked --quiet
fi

rm -f target/debian/civikey_*.deb
bash scripts/package.sh >&2
debs=(target/debian/civikey_*.deb)
[ ${#debs[@]} = 1 ] || fail "expected one package, found: ${debs[*]}"
deb="${debs[0]}"

# What the package holds, with modes.
listing="$(dpkg -c "$deb")"
for path in \
  ./usr/bin/civikey \
  ./usr/share/man/man1/civikey.1.gz \
  ./usr/share/bash-completion/completions/civikey \
  ./usr/share/zsh/vendor-completions/_civikey \
  ./usr/share/fish/vendor_completions.d/civikey.fish \
  ./usr/share/doc/civikey/config.example.toml \
  ./usr/share/doc/civikey/README \
  ./usr/share/doc/civikey/copyright; do
  grep -qE " $path\$" <<<"$listing" || fail "$deb lacks $path; it holds:
$listing"
done
grep -qE '^-rwxr-xr-x (root/root|0/0) .* \./usr/bin/civikey$' <<<"$listing" || fail "/usr/bin/civikey is not 0755 root"
odd="$(grep -vE '^d' <<<"$listing" | grep -vE '^-rw[-x]r-[-x]r-[-x] (root/root|0/0) ' || true)"
[ -z "$odd" ] || fail "files not owned by root or with odd modes: $odd"

dpkg -i "$deb" >&2
trap 'dpkg --purge civikey >/dev/null 2>&1 || true' EXIT

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
[ "$(/usr/bin/civikey --version)" = "civikey $version" ] || fail "civikey --version says: $(/usr/bin/civikey --version)"

# The installed man page renders without a warning, with every section.
man_err="$(mktemp)"
page="$(MANWIDTH=80 MANPAGER=cat man --warnings -l /usr/share/man/man1/civikey.1.gz 2>"$man_err")"
[ ! -s "$man_err" ] || fail "man warned: $(cat "$man_err")"
for section in NAME SYNOPSIS COMMANDS "INTERACTIVE SCREEN" FILES ENVIRONMENT "EXIT STATUS" SECURITY EXAMPLES; do
  grep -q "^$section" <<<"$page" || fail "the installed man page has no $section section"
done
grep -q "civikey config init" <<<"$(MANPAGER=cat man civikey 2>/dev/null)" || fail "man civikey does not find the page"

# The installed binary on the sample store, in a private home.
home="$(mktemp -d)"
run() { env -u CIVIKEY_CONFIG HOME="$home" XDG_CONFIG_HOME="$home/config" CIVIKEY_DATA_DIR="$home/data" "$@"; }
lines="$(run civikey list --limit 5 2>/dev/null | wc -l)"
[ "$lines" = 5 ] || fail "civikey list printed $lines lines, expected 5"
listed="$(run civikey list --limit 2 2>/dev/null)"
grep -q "Frances Allen" <<<"$listed" || fail "the sample contacts are not listed: $listed"
set +o pipefail
# The reader is gone before civikey writes (44 lines would fit in the pipe otherwise).
status="$( (sleep 0.5; run civikey list --limit 1000 2>"$man_err") | true; echo "${PIPESTATUS[0]}")"
set -o pipefail
[ "$status" = 141 ] && [ ! -s "$man_err" ] || fail "civikey list into a closed pipe: status $status, stderr: $(cat "$man_err")"

# The installed bash completion offers the config's profile names.
run civikey config init >/dev/null 2>&1 || fail "civikey config init failed"
run civikey config check >/dev/null 2>&1 || fail "civikey config check failed on the fresh config"
offered="$(run bash -c 'source /usr/share/bash-completion/completions/civikey
COMP_WORDS=(civikey --profile ""); COMP_CWORD=2; COMP_TYPE=9
_clap_complete_civikey civikey "" --profile; printf "%s\n" "${COMPREPLY[@]}"')"
[ "$offered" = local ] || fail "bash completion of --profile offered: $offered"
rm -rf "$home" "$man_err"

echo "package-check.sh: $deb built, holds what it should, installs, and works installed"
