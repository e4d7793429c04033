#!/usr/bin/env bash
# test.sh runs every test of tictac: formatting, vet, brief fuzzing and the
# whole suite with the race detector. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "fuzz (${FUZZTIME:=10s} per target)"
go test -run '^$' -fuzz '^FuzzPlay$' -fuzztime "$FUZZTIME" ./game
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$FUZZTIME" ./hub

step "go test -race"
go test -race -count=1 -timeout 20m ./...
