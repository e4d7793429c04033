#!/usr/bin/env bash
# test.sh runs every test of tictac: formatting, vet, brief fuzzing and the
# whole suite with the race detector. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*"; }

# Services the tests start on loopback (internal/testenv). Anything missing is
# installed; if it cannot be, the run fails rather than skipping tests.
export PATH="$PATH:/usr/sbin:/sbin"
step "dependencies"
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools) # comes with redis-server; creates the tests' Redis Cluster
command -v nginx >/dev/null || missing+=(nginx)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "installing ${missing[*]}"
	$sudo apt-get update
	$sudo apt-get install -y "${missing[@]}"
fi
if [ ! -d tools/reqlite/node_modules/reqlite ]; then
	npm ci --prefix tools/reqlite --no-audit --no-fund
fi
redis-server --version
nginx -v 2>&1
chromium --version
echo "node $(node --version), reqlite $(node -p 'require("./tools/reqlite/node_modules/reqlite/package.json").version')"

step "gofmt"
unformatted=$(gofmt -l $(find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...
(cd tools/tracewaits && go vet ./...) # a module of its own: a tool for BENCHMARKS, not in the binary

# Budgets are counts of executions, about 10 s each here: a duration
# (-fuzztime 10s) races Go 1.26's fuzz coordinator at its deadline and can
# fail with a bare "context deadline exceeded" (golang/go#75804, fixed in
# Go 1.27). FUZZTIME=1m fuzzes each target for that long instead.
step "fuzz (${FUZZTIME:-a fixed number of executions} per target)"
fuzz() { go test -run '^$' -fuzz "^$1\$" -fuzztime "${FUZZTIME:-$2}" "$3"; }
fuzz FuzzPlay 200000x ./game
fuzz FuzzDecode 50000x ./hub
fuzz FuzzMove 50000x ./store

step "go test, without -race: goroutine stack sizes"
# The race detector's instrumentation changes stack sizes, which is what
# this test measures (hub/conn_test.go).
go test -count=1 -run '^TestIdleStackAfterHello$' ./hub

step "go test -race"
rm -f artifacts/chaos.txt
go test -race -count=1 -p 1 -timeout 20m ./...
(cd tools/tracewaits && go test -race -count=1 ./...)
cat artifacts/chaos.txt # the chaos test's summary line
