#!/bin/sh
# build.sh OUT [VERSION]: the one way tictac is built, by the Dockerfile and
# by the tests alike: a static binary (no cgo, so it runs on distroless or
# scratch), without local paths or symbols, stamped with VERSION.
#
# VERSION defaults to `git describe --tags --always --dirty`, or "dev" where
# there is no git or no repository (a Docker build context has no .git: the
# Dockerfile passes --build-arg VERSION). GOOS and GOARCH pass through for
# cross builds.
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
	echo "usage: scripts/build.sh OUT [VERSION]" >&2
	exit 2
fi
out=$1
case $out in
/*) ;;
*) out=$PWD/$out ;;
esac
version=${2:-}
# The module root is this script's parent directory, wherever it is run from.
case $0 in
*/*) cd "${0%/*}/.." ;;
*) cd .. ;;
esac
if [ -z "$version" ]; then
	version=$(git describe --tags --always --dirty 2>/dev/null) || version=dev
	[ -n "$version" ] || version=dev
fi
CGO_ENABLED=0 exec go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out" .
