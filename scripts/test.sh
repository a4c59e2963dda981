#!/usr/bin/env bash
# Everything the tests need, then the tests. Runs on a fresh Debian machine as root with
# no input (it installs tmux, man-db, zsh, fish and MariaDB with apt-get when they are missing;
# zsh and fish run the completion tests), and on a
# developer's machine as any user (then missing packages are reported, not installed).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v tmux >/dev/null || need_pkgs+=(tmux)
command -v man >/dev/null || need_pkgs+=(man-db)
command -v zsh >/dev/null || need_pkgs+=(zsh)
command -v fish >/dev/null || need_pkgs+=(fish)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need_pkgs+=(mariadb-server)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${need_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
  else
    echo "test.sh: missing ${need_pkgs[*]}; install them (as root: apt-get install ${need_pkgs[*]})" >&2
  fi
fi

# A throwaway MariaDB for the MySQL store tests (prints the export lines they read).
if [ -f scripts/mariadb-test-server.sh ]; then
  eval "$(bash scripts/mariadb-test-server.sh)"
fi

cargo test --all-targets --locked

# The benchmark at a small size (20k contacts, SQLite and the MariaDB above): it fails on
# a search error or a screen that writes too much, never on a wall time.
cargo run --quiet --locked --bin civikey-bench -- --ci
