#!/usr/bin/env bash
# A throwaway MariaDB server for civikey's MySQL store tests.
#
#   eval "$(bash scripts/mariadb-test-server.sh)"   # start (or reuse) it, export its address
#   bash scripts/mariadb-test-server.sh stop        # stop it and delete its data
#
# Runs unattended as root on a fresh Debian machine: installs mariadb-server when no
# server binary is present, initialises a private datadir, starts mariadbd on 127.0.0.1
# (a free port, its own socket), creates the user civikey_test with every privilege (the
# tests create and drop their own databases) and prints two `export` lines on stdout.
# Everything else goes to stderr so that `eval` sees only the exports.
# The password is a test-only secret: it is printed because CI must pass it to the tests.
set -euo pipefail

STATE_DIR="${CIVIKEY_MARIADB_DIR:-${TMPDIR:-/tmp}/civikey-mariadb-test}"
DATA_DIR="$STATE_DIR/data"
SOCKET="$STATE_DIR/mysqld.sock"
PID_FILE="$STATE_DIR/mysqld.pid"
PORT_FILE="$STATE_DIR/port"
PASSWORD_FILE="$STATE_DIR/password"
LOG_FILE="$STATE_DIR/error.log"
USER_NAME=civikey_test

say() { printf 'mariadb-test-server: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

find_bin() {
    local name
    for name in "$@"; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
        if [ -x "/usr/sbin/$name" ]; then echo "/usr/sbin/$name"; return 0; fi
    done
    return 1
}

client_bin() { find_bin mariadb mysql; }
admin_bin() { find_bin mariadb-admin mysqladmin; }

# As root over the server's own socket (unix_socket authentication: no password exists).
root_sql() { "$(client_bin)" --no-defaults --protocol=socket --socket="$SOCKET" -uroot -N -B -e "$1"; }

server_answers() {
    [ -S "$SOCKET" ] && "$(admin_bin)" --no-defaults --protocol=socket --socket="$SOCKET" -uroot \
        --connect-timeout=2 ping >/dev/null 2>&1
}

server_pid() {
    [ -f "$PID_FILE" ] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

print_exports() {
    printf 'export CIVIKEY_TEST_MYSQL_URL=mysql://%s@127.0.0.1:%s\n' "$USER_NAME" "$(cat "$PORT_FILE")"
    printf 'export CIVIKEY_TEST_MYSQL_PASSWORD=%s\n' "$(cat "$PASSWORD_FILE")"
}

stop_server() {
    local pid
    if pid="$(server_pid)"; then
        say "stopping mariadbd (pid $pid)"
        kill "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            die "mariadbd (pid $pid) did not stop within 30 s; see $LOG_FILE"
        fi
    else
        say "no server running"
    fi
    rm -rf "$STATE_DIR"
    say "stopped; $STATE_DIR removed"
}

# A port nobody listens on now (bash's /dev/tcp: a refused connection means free).
pick_port() {
    local port
    for _ in $(seq 1 50); do
        port=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

install_server() {
    if find_bin mariadbd mysqld >/dev/null; then return 0; fi
    [ "$(id -u)" -eq 0 ] || die "mariadb-server is not installed and this is not root; install it or run as root"
    say "installing mariadb-server with apt-get (this takes a minute)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends mariadb-server mariadb-client >&2
    find_bin mariadbd mysqld >/dev/null || die "mariadb-server was installed but no mariadbd/mysqld was found"
}

start_server() {
    local server install_db port pid
    server="$(find_bin mariadbd mysqld)"
    install_db="$(find_bin mariadb-install-db mysql_install_db)" || die "mariadb-install-db not found"
    mkdir -p "$STATE_DIR"
    chmod 700 "$STATE_DIR"
    if [ ! -d "$DATA_DIR/mysql" ]; then
        say "initialising $DATA_DIR"
        rm -rf "$DATA_DIR"
        "$install_db" --no-defaults --datadir="$DATA_DIR" --user="$(id -un)" \
            --auth-root-authentication-method=socket --skip-test-db >"$STATE_DIR/install.log" 2>&1 \
            || { cat "$STATE_DIR/install.log" >&2; die "mariadb-install-db failed"; }
    fi
    if [ ! -f "$PASSWORD_FILE" ]; then
        (umask 077; head -c 32 /dev/urandom | base64 | tr -d '+/=\n' | head -c 32 >"$PASSWORD_FILE")
    fi
    # A chosen port can be taken between the check and the bind: try a few.
    for _ in 1 2 3 4 5; do
        port="$(pick_port)" || die "no free port found"
        say "starting mariadbd on 127.0.0.1:$port"
        rm -f "$SOCKET" "$PID_FILE"
        # setsid + redirections: the server outlives this script and never holds the
        # stdout that `eval "$(...)"` waits on.
        setsid "$server" --no-defaults --user="$(id -un)" --datadir="$DATA_DIR" \
            --socket="$SOCKET" --pid-file="$PID_FILE" --port="$port" --bind-address=127.0.0.1 \
            --skip-name-resolve --log-error="$LOG_FILE" --character-set-server=utf8mb4 \
            --collation-server=utf8mb4_unicode_ci </dev/null >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 1 120); do
            if server_answers; then
                echo "$port" >"$PORT_FILE"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            die "mariadbd did not answer within 60 s; see $LOG_FILE"
        fi
        say "mariadbd exited early (port $port taken?); retrying. Last log lines:"
        tail -n 5 "$LOG_FILE" >&2 || true
    done
    die "mariadbd would not start; see $LOG_FILE"
}

create_user() {
    local password
    password="$(cat "$PASSWORD_FILE")"
    # 127.0.0.1 for TCP (names are not resolved), localhost for the socket.
    root_sql "
        CREATE USER IF NOT EXISTS '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$password';
        CREATE USER IF NOT EXISTS '$USER_NAME'@'localhost' IDENTIFIED BY '$password';
        ALTER USER '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$password';
        ALTER USER '$USER_NAME'@'localhost' IDENTIFIED BY '$password';
        GRANT ALL PRIVILEGES ON *.* TO '$USER_NAME'@'127.0.0.1' WITH GRANT OPTION;
        GRANT ALL PRIVILEGES ON *.* TO '$USER_NAME'@'localhost' WITH GRANT OPTION;
        FLUSH PRIVILEGES;" >&2
}

case "${1:-start}" in
    stop)
        stop_server
        ;;
    start)
        if server_pid >/dev/null && server_answers && [ -f "$PORT_FILE" ] && [ -f "$PASSWORD_FILE" ]; then
            say "reusing the server already running on 127.0.0.1:$(cat "$PORT_FILE")"
        else
            if pid="$(server_pid)"; then
                die "mariadbd (pid $pid) runs but does not answer; run '$0 stop' first"
            fi
            install_server
            start_server
            create_user
            say "ready on 127.0.0.1:$(cat "$PORT_FILE") (data in $DATA_DIR; stop with: $0 stop)"
        fi
        print_exports
        ;;
    *)
        die "usage: $0 [start|stop]"
        ;;
esac
