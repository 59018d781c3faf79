# Sealpost. `make run` starts the appliance with no configuration; `make test`
# runs every test, installing what the tests need (Chromium) when missing.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/sealpost
GOFILES  := $(shell git ls-files '*.go' 2>/dev/null)

.PHONY: build run test test-deps check fmt bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

run: build
	./$(BIN) serve

# -count=1: the e2e tests build the binary in a subprocess, which the test
# cache cannot see, so a cached result could hide a change.
test: test-deps check
	$(GO) test -count=1 -timeout 20m ./...
	GODEBUG=fips140=only $(GO) test -count=1 -short ./appliance/...

test-deps:
	@scripts/test-deps.sh

check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fmt:
	gofmt -w $(GOFILES)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...
	# A 1 GiB attachment through the real binary's compose form and back.
	SEALPOST_LARGE_FILE_MB=1024 $(GO) test -run '^TestLargeAttachment$$' -count=1 -v -timeout 30m ./e2e | grep -E 'MiB|ok|FAIL'
	# Secure-message intake against Debian's Postfix, same load, same run.
	SEALPOST_COMPARE_POSTFIX=1 $(GO) test -run '^TestIntakeVersusPostfix$$' -count=1 -v -timeout 30m ./e2e | grep -E 'msgs/s|ok|FAIL'

# The packaged configuration is the described configuration with the
# system's ports and paths; a test keeps it equal to that output.
packaging/sealpost.toml: build
	env -i SEALPOST_DATA_DIR=/var/lib/sealpost SEALPOST_KEY_FILE=/etc/sealpost/sealpost.key \
		SEALPOST_HTTPS__LISTEN=:443 SEALPOST_HTTP__LISTEN=:80 \
		SEALPOST_SMTP__RELAY_LISTEN=:25 SEALPOST_SMTP__SUBMISSION_LISTEN=:587 \
		./$(BIN) config check --config /dev/null --describe > $@

clean:
	rm -rf bin
