#!/bin/sh
# A throwaway PostgreSQL server for the tests and the benchmark, from the installed binaries.
#
#   scripts/postgres.sh start DIR [PORT]   initdb DIR (first time only) and start the server on
#                                          127.0.0.1:PORT (default: a free port); prints the URL
#                                          postgresql://postgres@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DIR           stop the server of DIR (fast shutdown); DIR is kept
#   scripts/postgres.sh destroy DIR        stop it and remove DIR
#
# Authentication is `trust` for every role but one: the role p3m_auth must give its password
# (scram-sha-256), so that the tests can try a wrong one. Create it with
#   CREATE ROLE p3m_auth LOGIN PASSWORD '...'
# The server refuses to run as root: as root, the script runs it as the `postgres` user
# (created with useradd when missing) and hands DIR to that user. DIR must not be inside a
# folder the postgres user cannot enter (pytest's tmp_path under /tmp/pytest-of-root is one).
#
# Needs: Debian's postgresql package (apt-get install -y postgresql), or any PostgreSQL with
# initdb and pg_ctl in /usr/lib/postgresql/*/bin or on PATH.
# Exit status: 0 (and the URL on stdout) when the server answers; 2 when the binaries are
# missing; 1 when it did not start (the end of its log on stderr).
set -eu

usage() { echo "usage: $0 start DIR [PORT] | stop DIR | destroy DIR" >&2; exit 64; }

[ $# -ge 2 ] || usage
cmd=$1
DIR=$2
PORT=${3:-}

bindir=""
for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && bindir=$d # the last one is the newest version
done
if [ -z "$bindir" ]; then
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        bindir=$(dirname "$(command -v initdb)")
    else
        echo "postgres.sh: no PostgreSQL server binaries (initdb, pg_ctl) found in" \
            "/usr/lib/postgresql/*/bin or on PATH: apt-get install -y postgresql" >&2
        exit 2
    fi
fi

as_owner() { # run a command as the user that owns the cluster
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
stop | destroy)
    if [ -f "$DIR/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
    fi
    [ "$cmd" = destroy ] && rm -rf "$DIR"
    exit 0
    ;;
start) ;;
*) usage ;;
esac

if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd -r -M -d /nonexistent -s /usr/sbin/nologin postgres
fi

mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then
    chown postgres "$DIR"
fi
chmod 700 "$DIR"

if [ ! -f "$DIR/data/PG_VERSION" ]; then
    as_owner "$bindir/initdb" -D "$DIR/data" -A trust -U postgres -E UTF8 --no-sync \
        >"$DIR/initdb.log" 2>&1 || {
        tail -n 20 "$DIR/initdb.log" >&2
        exit 1
    }
    # First match wins: p3m_auth needs its password, everyone else is trusted.
    cat >"$DIR/data/pg_hba.conf" <<'EOF'
local   all   all                      trust
host    all   p3m_auth   127.0.0.1/32  scram-sha-256
host    all   all        127.0.0.1/32  trust
host    all   all        ::1/128       trust
EOF
fi

if [ -z "$PORT" ]; then
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi

# Throwaway server: durability off, enough connections for many parallel sessions.
if ! as_owner "$bindir/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start -o \
    "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    >/dev/null; then
    tail -n 20 "$DIR/server.log" >&2
    exit 1
fi
echo "postgresql://postgres@127.0.0.1:$PORT/postgres"
