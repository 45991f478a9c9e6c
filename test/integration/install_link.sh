#!/bin/bash
# install_link: `mnist2sql` works as the README writes it after make install.  Debian's
# PostgreSQL keeps its programs in /usr/lib/postgresql/N/bin, off PATH; make install then links
# mnist2sql into /usr/local/bin (BINDIR_LINK), except in a staged install (DESTDIR), which gets
# the link only when asked for.  Checked in staged installs, with a
# pg_config that reports a Debian bindir and one that reports another; then, when the harness's
# own PostgreSQL is Debian's, the real link with a plain login PATH.
source "$(dirname "$0")/../lib.sh"

S=$TEST_TMP/install_link
mkdir -p "$S"
login_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
bindir=$("$PG_CONFIG" --bindir)

# A pg_config that reports BINDIR as its bindir and is the real one otherwise.
fake_pg_config() {
	cat >"$S/pg_config" <<-EOF
		#!/bin/sh
		[ "\$1" = --bindir ] && { echo '$1'; exit 0; }
		exec '$PG_CONFIG' "\$@"
	EOF
	chmod +x "$S/pg_config"
}
# staged_install DIR [make arguments]: make install into DESTDIR=DIR, the output in DIR.log.
staged_install() {
	local dir=$1
	shift
	make -C "$HARNESS_ROOT" install DESTDIR="$dir" PG_CONFIG="$S/pg_config" "$@" >"$dir.log" 2>&1
}

# A staged install (a packager's DESTDIR) writes nothing outside PGXS's directories by default.
fake_pg_config /usr/lib/postgresql/15/bin
staged_install "$S/packaged" || fail "make install (packager): $(tail -n 5 "$S/packaged.log")"
check_eq "$(find "$S/packaged" -path '*local/bin*' | wc -l)" 0 "DESTDIR: no link outside PGXS's directories"

# Debian's layout, the link asked for: the link, and through it the command on a login PATH.
staged_install "$S/debian" BINDIR_LINK=/usr/local/bin || fail "make install (Debian bindir): $(tail -n 5 "$S/debian.log")"
check_eq "$(readlink "$S/debian/usr/local/bin/mnist2sql")" /usr/lib/postgresql/15/bin/mnist2sql \
	"Debian bindir: make install links /usr/local/bin/mnist2sql to it"
staged_install "$S/debian" uninstall BINDIR_LINK=/usr/local/bin || fail "make uninstall"
check_eq "$(ls -A "$S/debian/usr/local/bin")" "" "make uninstall removes the link"
fake_pg_config "$bindir"
staged_install "$S/path" BINDIR_LINK=/usr/local/bin || fail "make install BINDIR_LINK=/usr/local/bin"
check_eq "$(env PATH="$S/path/usr/local/bin:$login_path" sh -c 'command -v mnist2sql && mnist2sql --help >/dev/null && echo ran' 2>&1)" \
	"$S/path/usr/local/bin/mnist2sql
ran" "mnist2sql runs from the link on a login PATH"

# A bindir of one's own (normally on PATH): no link unless asked for; BINDIR_LINK= none.
fake_pg_config /opt/pgsql/bin
staged_install "$S/own" || fail "make install (own bindir)"
check_eq "$(find "$S/own" -path '*local/bin*' | wc -l)" 0 "another bindir: no link"
fake_pg_config /usr/lib/postgresql/15/bin
staged_install "$S/none" BINDIR_LINK= || fail "make install BINDIR_LINK="
check_eq "$(find "$S/none" -path '*local/bin*' | wc -l)" 0 "BINDIR_LINK= : no link"

# Someone else's mnist2sql is never replaced.
mkdir -p "$S/foreign/usr/local/bin"
echo '#!/bin/sh' >"$S/foreign/usr/local/bin/mnist2sql"
if staged_install "$S/foreign" BINDIR_LINK=/usr/local/bin; then
	fail "make install replaced a file that is not its link"
else
	check_eq "$(grep -c 'exists and is not a link' "$S/foreign.log")" 1 "a foreign mnist2sql: make install refuses, says why"
	check_eq "$(cat "$S/foreign/usr/local/bin/mnist2sql")" '#!/bin/sh' "the foreign file is untouched"
fi

# The harness's own install.
case $bindir in
/usr/lib/postgresql/*/bin)
	check_eq "$(env PATH=$login_path sh -c 'readlink -f "$(command -v mnist2sql)"')" "$bindir/mnist2sql" \
		"this install: mnist2sql on a login PATH is $bindir/mnist2sql"
	;;
*) echo "  (this PostgreSQL's bindir $bindir is not Debian's: the real link is not checked)" ;;
esac
