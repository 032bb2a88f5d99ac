# Build, test and code generation. Everything runs offline from the Go module
# cache: buf comes from tools/go.mod, the protoc plugins from go.mod's tools.
BUF     := go tool -modfile=tools/go.mod buf
VERSION ?= 0.1.0
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build generate test check-generated lint

all: build

build:
	go build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## generate: regenerate gen/ from proto/ and the plugin manifests from the code
generate:
	$(BUF) lint
	$(BUF) generate
	@if [ -d cmd/workflow-plugin-eventbus ]; then go run -ldflags '$(LDFLAGS)' ./cmd/workflow-plugin-eventbus manifest -dir .; fi

## check-generated: fail when generated files differ from what is committed
check-generated: generate
	@git status --porcelain -- gen plugin.json plugin.contracts.json | grep . && { \
	  echo "generated files are out of date: run 'make generate' and commit"; git diff --stat -- gen; exit 1; } || true

test:
	go test -race ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
