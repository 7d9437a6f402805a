# wardstream — the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/wardstream
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Packages with cgo-only parts (ONNX, libav) build without cgo deps missing? No: we install them in `deps`.
UNIT_FLAGS ?= -race -shuffle=on -count=1
IT_TIMEOUT ?= 25m

.PHONY: all build deps services services-down services-status proto test unit integration vet demo demo-embedded clean fuzz bench-go

all: build

## build: compile bin/wardstream
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/wardstream

## deps: install the system packages and libraries builds and tests need
deps:
	bash deploy/local/deps.sh

## services: install (if missing) and start Kafka, ClickHouse and Mosquitto on loopback
services:
	bash deploy/local/services.sh up

## services-down: stop exactly what `make services` started
services-down:
	bash deploy/local/services.sh down

services-status:
	bash deploy/local/services.sh status

## proto: regenerate schemas/proto/wardstreamv1 from schemas/proto/wardstream/v1/*.proto
## (protoc-gen-go, and vtprotobuf's MarshalVT/SizeVT used by schemas/codec.Goka)
proto:
	@command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/struct.proto ] || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler libprotobuf-dev; }
	mkdir -p .local/bin
	$(GO) build -o .local/bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	$(GO) build -o .local/bin/protoc-gen-go-vtproto github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto
	protoc --plugin=protoc-gen-go=.local/bin/protoc-gen-go --plugin=protoc-gen-go-vtproto=.local/bin/protoc-gen-go-vtproto \
	  -I schemas/proto -I /usr/include \
	  --go_out=. --go_opt=module=github.com/wardstream/wardstream \
	  --go-vtproto_out=. --go-vtproto_opt=module=github.com/wardstream/wardstream,features=marshal+size \
	  schemas/proto/wardstream/v1/*.proto

vet:
	$(GO) vet ./...

## unit: unit tests, race detector on, no network
unit:
	$(GO) test $(UNIT_FLAGS) ./...

## integration: integration tests against the real services (starts them; chDB for the modern schema)
integration: services
	bash deploy/local/chdb.sh >/dev/null
	set -a; source .local/services.env; set +a; \
	WARDSTREAM_IT=1 $(GO) test -count=1 -timeout $(IT_TIMEOUT) -run 'Integration' ./...

## test: vet, unit tests (-race), then integration tests on the real Kafka, ClickHouse and Mosquitto
test: deps vet unit integration build

## fuzz: every fuzz target (decoders, codecs, parsers), FUZZTIME each (default 20s)
FUZZTIME ?= 20s
fuzz:
	@set -e; for d in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$d/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/'); do \
	    echo "== $$d $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$d; \
	  done; \
	done

## bench-go: the Go benchmarks: logic-only ones, then the broker ones on the real services (one iteration each)
bench-go: services
	$(GO) test -run '^$$' -bench . -benchmem ./...
	set -a; source .local/services.env; set +a; \
	WARDSTREAM_IT=1 $(GO) test -run '^$$' -bench Integration -benchtime 1x -timeout 30m ./...

## demo: build, start services, apply topics and migrations, run every role and a simulated ward
demo: deps build services
	bash deploy/local/demo.sh

## demo-embedded: the same demo without Java: Kafka is `wardstream embedded-kafka` (franz-go kfake, not Apache Kafka)
demo-embedded: deps build
	WARDSTREAM_KAFKA=embedded bash deploy/local/services.sh up
	bash deploy/local/demo.sh

clean:
	rm -rf bin
