# shellcheck shell=bash
# lib.sh -- pieces shared by scripts/run and scripts/test: the Debian
# packages Iris needs, how to install the missing ones, and how to build.
# Sourced, never run; the caller sets IRIS_ROOT (the repo's top directory).

# Everything the build, the run script and the tests use.
IRIS_DEBIAN_PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libfcgi-dev libjson-c-dev libsqlite3-dev sqlite3
	libcurl4-openssl-dev libssl-dev libcmocka-dev libmicrohttpd-dev
	bubblewrap nodejs python3-numpy python3-pandas python3-matplotlib
	python3-scipy python3-sklearn python3-seaborn python3-plotly
	python3-statsmodels python3-openpyxl python3-pil python3-ipython
	python3-matplotlib-inline
	nginx-light python3-pytest python3-requests
	curl
)

iris_say() {
	printf '%s: %s\n' "${0##*/}" "$*" >&2
}

iris_die() {
	iris_say "$*"
	exit 1
}

# Runs a command as root: directly when we are root, else through sudo.
iris_as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		iris_die "need root to run '$*'; run this script as root or install sudo"
	fi
}

# Prints the packages of IRIS_DEBIAN_PACKAGES that are not installed.
iris_missing_packages() {
	local pkg status
	for pkg in "${IRIS_DEBIAN_PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) || status=
		[ "$status" = installed ] || printf '%s\n' "$pkg"
	done
}

# npm, for the test of E2B's own SDK: Node.js from Debian leaves it out,
# Node.js from other sources brings it.  Prints "npm" if it is missing.
iris_missing_npm() {
	command -v npm >/dev/null 2>&1 || printf 'npm\n'
}

# Installs the missing packages, if any (apt-get update only then).
#
# The nginx package would start its own service with the default site on
# port 80; we never use it (nginx runs from a state directory, see
# scripts/run), so a policy-rc.d that denies service starts is in place for
# the length of the install when none exists already, and on a systemd host
# the unit is disabled afterwards -- only when this install added nginx.
iris_install_packages() {
	local missing policy=/usr/sbin/policy-rc.d added_policy=no new_nginx=no
	mapfile -t missing < <(iris_missing_packages; iris_missing_npm)
	[ "${#missing[@]}" -gt 0 ] || return 0
	command -v apt-get >/dev/null 2>&1 ||
		iris_die "missing packages (${missing[*]}) and no apt-get: install them by hand"
	iris_say "installing ${missing[*]}"
	case " ${missing[*]} " in
	*" nginx-light "*) new_nginx=yes ;;
	esac
	if [ "$new_nginx" = yes ] && [ ! -e "$policy" ]; then
		iris_as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
		added_policy=yes
	fi
	local rc=0
	iris_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		iris_as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		rc=$?
	[ "$added_policy" = no ] || iris_as_root rm -f "$policy"
	[ "$rc" -eq 0 ] || iris_die "apt-get failed (status $rc)"
	if [ "$new_nginx" = yes ] && [ -d /run/systemd/system ]; then
		iris_as_root systemctl disable --now nginx.service >/dev/null 2>&1 || true
	fi
	mapfile -t missing < <(iris_missing_packages)
	[ "${#missing[@]}" -eq 0 ] || iris_die "still missing after apt-get: ${missing[*]}"
}

# The npm packages the JavaScript/TypeScript kernel loads inside sandboxes
# (sandbox/node: acorn, typescript), from their lockfile.
iris_install_sandbox_node() {
	"$IRIS_ROOT/sandbox/node/install" ||
		iris_die "sandbox/node/install failed (is the npm registry reachable?)"
}

# iris_build BUILDDIR [CONFIGURE-ARG...]
# Generates configure when absent, configures BUILDDIR when it has no
# Makefile (BUILDDIR other than IRIS_ROOT holds a copy of the sources,
# refreshed on every call), then runs make,
# which from there on reruns autotools and configure itself when their
# inputs change and rebuilds what is older than its sources.
iris_build() {
	local builddir=$1 jobs
	shift
	jobs=$(nproc 2>/dev/null || echo 2)
	mkdir -p "$builddir"
	# Another build (sanitizers, say) gets its own copy of the sources,
	# configured in place there: a tree configured in place refuses VPATH
	# builds.  tar keeps the files' times, so make stays incremental.
	if [ "$builddir" != "$IRIS_ROOT" ]; then
		command -v git >/dev/null 2>&1 && [ -e "$IRIS_ROOT/.git" ] ||
			iris_die "a separate build needs the git checkout"
		(cd "$IRIS_ROOT" && git ls-files -z -co --exclude-standard |
			tar --null -cf - -T -) | (cd "$builddir" && tar -xf -) ||
			iris_die "copying the sources to $builddir failed"
	fi
	if [ ! -x "$builddir/configure" ]; then
		iris_say "autoreconf -fi"
		(cd "$builddir" && autoreconf -fi) || iris_die "autoreconf failed"
	fi
	if [ ! -f "$builddir/Makefile" ]; then
		iris_say "configure $*"
		(cd "$builddir" && ./configure "$@") || iris_die "configure failed"
	fi
	make -s -C "$builddir" -j "$jobs" || iris_die "make failed"
}
