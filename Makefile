# kustomer-sqlite: a SQLite extension that turns analytics events into
# Kustomer API requests and keeps Kustomer's records as SQLite tables.
#
#   make            build dist/kustomer.so
#   make demo       install what is missing, build, run sql/demo.sql
#   make test       install what is missing, build, run every test suite
#   make asan       the test suites against an ASan+UBSan build
#   make valgrind   the test suites under valgrind memcheck
#   make bench      speed against SQLite's json(), memory, delivery figures
#   make fuzz       the libFuzzer targets, FUZZ_SECONDS each (default 60)
#   make fake-kustomer  a local stand-in for Kustomer's API
#   make install    the extension and docs under PREFIX (/usr/local), DESTDIR honoured
#   make uninstall  remove what make install put there
#   make deb        dist/kustomer-sqlite_<version>_<arch>.deb, with dpkg-deb
#   make deps       install the Debian packages the project needs
#   make clean

# The one place the version lives: kustomer_version(), the User-Agent and
# the .deb all take it from here.
VERSION := $(shell cat VERSION 2>/dev/null)
ifeq ($(VERSION),)
$(error VERSION is missing or empty)
endif
VERSION_DEF = -DKUSTOMER_VERSION='"$(VERSION)"'

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
XCFLAGS  = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -fPIC -fvisibility=hidden \
           $(VERSION_DEF)
# curl and cJSON as pkg-config describes them (the loadable never links
# libsqlite3: the host provides it).
PKGS     = libcurl libcjson libcrypto zlib
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS       = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
# Never unloaded: libcurl's TLS stack (OpenSSL, GnuTLS via librtmp) keeps
# exit handlers and thread-local state that a dlclose() at the host's exit
# would run against unmapped code (and LeakSanitizer crashes on it).
SO_LDFLAGS = -Wl,-z,nodelete

SRC      = kustomer_ext.c $(wildcard src/*.c)
HDR      = $(wildcard src/*.h)
SO       = dist/kustomer.so
ASAN_SO  = build/asan/kustomer.so
# The same with limits small enough for a test to reach (tests/test_fetch.py).
LIMITS   = -DFETCH_MAX_PAGES=4 -DFETCH_DEADLINE=3.0
LIMITS_SO      = build/limits/kustomer.so
ASAN_LIMITS_SO = build/asan-limits/kustomer.so
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer \
	  -fsanitize=address,undefined -fno-sanitize-recover=undefined
SQLITE3 ?= sqlite3

# Debian packages: to build, to test (and to run the demo).
BUILD_PKGS = make gcc libc6-dev pkg-config libsqlite3-dev libcjson-dev libcurl4-openssl-dev libssl-dev zlib1g-dev ca-certificates
TEST_PKGS  = sqlite3 python3 valgrind dpkg-dev

.PHONY: all deps demo test asan valgrind unit clean check-deps fake-kustomer layers \
	install uninstall deb

all: $(SO)

# A missing dependency is named with the command that installs it.
check-deps:
	@command -v pkg-config >/dev/null || { echo "error: pkg-config not found: install pkg-config (sudo apt-get install pkg-config)" >&2; exit 1; }
	@pkg-config --exists sqlite3 || { echo "error: sqlite3ext.h not found: install libsqlite3-dev (sudo apt-get install libsqlite3-dev)" >&2; exit 1; }
	@pkg-config --exists libcjson || { echo "error: cjson/cJSON.h not found: install libcjson-dev (sudo apt-get install libcjson-dev)" >&2; exit 1; }
	@pkg-config --exists libcurl || { echo "error: curl/curl.h not found: install libcurl4-openssl-dev (sudo apt-get install libcurl4-openssl-dev)" >&2; exit 1; }
	@pkg-config --exists libcrypto || { echo "error: openssl/evp.h not found: install libssl-dev (sudo apt-get install libssl-dev)" >&2; exit 1; }
	@pkg-config --exists zlib || { echo "error: zlib.h not found: install zlib1g-dev (sudo apt-get install zlib1g-dev)" >&2; exit 1; }

# One rule per build of the extension: $(1) the file, $(2) its flags.
define SO_RULE
$(1): $$(SRC) $$(HDR) VERSION | check-deps
	@mkdir -p $$(dir $$@)
	$$(CC) $$(XCFLAGS) $(2) $$(PKG_CFLAGS) -shared $$(SO_LDFLAGS) -o $$@ \
	  $$(SRC) $$(LIBS)
endef
$(eval $(call SO_RULE,$(SO),$$(CFLAGS)))
$(eval $(call SO_RULE,$(ASAN_SO),$$(ASAN_FLAGS)))
$(eval $(call SO_RULE,$(LIMITS_SO),$$(CFLAGS) $$(LIMITS)))
$(eval $(call SO_RULE,$(ASAN_LIMITS_SO),$$(ASAN_FLAGS) $$(LIMITS)))

# Unit tests: jsnum alone; the core and kapi.c with SQLITE_CORE against
# libsqlite3 (tests/unit/test_core.c includes their sources).
CORE_SRC = src/jsnum.c src/json.c src/settings.c src/transform.c src/kapi.c
define UNIT_RULES
$(1)/test_jsnum: tests/unit/test_jsnum.c src/jsnum.c src/kustomer.h | check-deps
	@mkdir -p $(1)
	$$(CC) $$(XCFLAGS) $(2) -Isrc -o $$@ tests/unit/test_jsnum.c src/jsnum.c -lm
$(1)/test_core: tests/unit/test_core.c $$(CORE_SRC) src/http.c src/kustomer.h VERSION | check-deps
	@mkdir -p $(1)
	$$(CC) $$(XCFLAGS) $(2) -DSQLITE_CORE $$(PKG_CFLAGS) -Isrc -o $$@ \
	  tests/unit/test_core.c src/http.c $$(LIBS) -lsqlite3
$(1)/test_sha256: tests/unit/test_sha256.c src/sha256.c src/kustomer.h | check-deps
	@mkdir -p $(1)
	$$(CC) $$(XCFLAGS) $(2) $$(PKG_CFLAGS) -Isrc -o $$@ tests/unit/test_sha256.c \
	  src/sha256.c $$(LIBS)
endef
comma := ,
$(eval $(call UNIT_RULES,build,$$(CFLAGS)))
$(eval $(call UNIT_RULES,build/asan,-O1 -g -fsanitize=address$$(comma)undefined -fno-sanitize-recover=undefined))

# The layers of README "Layout" (tests/run.sh runs this too).
layers:
	@tests/layers.sh

# Install whatever Debian packages are missing (as root, or with sudo).
deps:
	@missing=""; for p in $(BUILD_PKGS) $(TEST_PKGS) $(EXTRA_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

demo: deps
	@$(MAKE) --no-print-directory $(SO)
	@mkdir -p out
	$(SQLITE3) :memory: < sql/demo.sql

unit: build/test_jsnum build/test_core build/test_sha256

test: deps
	@$(MAKE) --no-print-directory $(SO) $(LIMITS_SO) unit
	@KUSTOMER_LIMITS_SO=$(LIMITS_SO) tests/run.sh $(SO)

asan: deps
	@$(MAKE) --no-print-directory $(ASAN_SO) $(ASAN_LIMITS_SO) build/asan/test_jsnum build/asan/test_core build/asan/test_sha256
	@KUSTOMER_UNIT_DIR=build/asan KUSTOMER_LIMITS_SO=$(ASAN_LIMITS_SO) KUSTOMER_TEST_SKIP_PLAIN=1 \
	  KUSTOMER_TEST_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  tests/run.sh $(ASAN_SO)

valgrind: deps
	@$(MAKE) --no-print-directory $(SO) $(LIMITS_SO) unit
	@KUSTOMER_TEST_SCALE=0.05 KUSTOMER_LIMITS_SO=$(LIMITS_SO) KUSTOMER_TEST_SKIP_PLAIN=1 \
	  KUSTOMER_TEST_WRAP="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite" \
	  tests/run.sh $(SO)

# A local stand-in for Kustomer's API, for trying the extension without an
# account: point settings.baseEndpoint at the address it prints.
fake-kustomer:
	python3 tests/fake_kustomer.py --port $${PORT:-8089}

clean:
	rm -rf dist build out

# make install [PREFIX=/usr/local] [DESTDIR=]: the extension where
# `.load $(PREFIX)/lib/sqlite3/kustomer` finds it, the README, the
# changelog and the SQL recipes (with the demo's sample archive, which
# they read) in the doc folder.  make uninstall removes those files, then
# the folders if they are left empty (never a folder holding anything else).
PREFIX  ?= /usr/local
LIBDIR   = $(PREFIX)/lib/sqlite3
DOCDIR   = $(PREFIX)/share/doc/kustomer-sqlite
DOCS     = README.md CHANGELOG.md
RECIPES  = $(wildcard sql/*.sql) sql/sample_events.ndjson

install: $(SO)
	install -d '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(DOCDIR)/sql'
	install -m 644 $(SO) '$(DESTDIR)$(LIBDIR)/kustomer.so'
	install -m 644 $(DOCS) '$(DESTDIR)$(DOCDIR)/'
	install -m 644 $(RECIPES) '$(DESTDIR)$(DOCDIR)/sql/'

uninstall:
	rm -f '$(DESTDIR)$(LIBDIR)/kustomer.so'
	for f in $(DOCS); do rm -f "$(DESTDIR)$(DOCDIR)/$$f"; done
	for f in $(notdir $(RECIPES)); do rm -f "$(DESTDIR)$(DOCDIR)/sql/$$f"; done
	rmdir '$(DESTDIR)$(DOCDIR)/sql' '$(DESTDIR)$(DOCDIR)' '$(DESTDIR)$(LIBDIR)' 2>/dev/null || true

# make deb: the same files under /usr, plus Debian's copyright file, in
# dist/kustomer-sqlite_<version>_<arch>.deb, with no network.  Depends is
# what dpkg-shlibdeps finds for the libraries the extension links
# (pkg/deb-depends.sh; ldd and dpkg -S without dpkg-dev).  The .so is
# stripped, as Debian ships shared objects (policy 10.1); dist/ keeps -g.
DEB_ARCH   = $(shell dpkg --print-architecture 2>/dev/null)
DEB        = dist/kustomer-sqlite_$(VERSION)_$(DEB_ARCH).deb
DEB_DIR    = build/deb
# dpkg-shlibdeps wants the files in debian/<package>/, beside debian/control.
DEB_ROOT   = $(DEB_DIR)/debian/kustomer-sqlite
DEB_MAINTAINER ?= $(shell git log -1 --format='%an <%ae>' 2>/dev/null)

deb: $(DEB)

$(DEB): $(SO) $(DOCS) $(RECIPES) VERSION pkg/copyright pkg/deb-depends.sh Makefile
	@command -v dpkg-deb >/dev/null || { echo "error: dpkg-deb not found: make deb builds Debian packages on Debian (sudo apt-get install dpkg dpkg-dev)" >&2; exit 1; }
	@[ -n "$(DEB_ARCH)" ] || { echo "error: dpkg --print-architecture gave nothing" >&2; exit 1; }
	@[ -n "$(DEB_MAINTAINER)" ] || { echo "error: no maintainer: not a git checkout, set DEB_MAINTAINER='Name <address>'" >&2; exit 1; }
	rm -rf $(DEB_DIR)
	@$(MAKE) --no-print-directory install DESTDIR='$(CURDIR)/$(DEB_ROOT)' PREFIX=/usr
	install -m 644 pkg/copyright $(DEB_ROOT)/usr/share/doc/kustomer-sqlite/copyright
	strip --remove-section=.comment --remove-section=.note --strip-unneeded \
	  $(DEB_ROOT)/usr/lib/sqlite3/kustomer.so
	install -d $(DEB_ROOT)/DEBIAN
	cd $(DEB_ROOT) && find usr -type f | LC_ALL=C sort | xargs md5sum > DEBIAN/md5sums
	printf 'Source: kustomer-sqlite\n\nPackage: kustomer-sqlite\nArchitecture: any\n' \
	  > $(DEB_DIR)/debian/control
	@echo "writing $(DEB_ROOT)/DEBIAN/control"
	@depends=$$(cd $(DEB_DIR) && $(CURDIR)/pkg/deb-depends.sh debian/kustomer-sqlite/usr/lib/sqlite3/kustomer.so) && \
	size=$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1) && \
	{ echo "Package: kustomer-sqlite"; \
	  echo "Version: $(VERSION)"; \
	  echo "Architecture: $(DEB_ARCH)"; \
	  echo "Maintainer: $(DEB_MAINTAINER)"; \
	  echo "Installed-Size: $$size"; \
	  echo "Depends: $$depends"; \
	  echo "Recommends: sqlite3"; \
	  echo "Section: database"; \
	  echo "Priority: optional"; \
	  echo "Description: SQLite extension: analytics events as Kustomer API requests"; \
	  echo " A loadable SQLite extension (.load /usr/lib/sqlite3/kustomer) that turns"; \
	  echo " RudderStack and Segment events into the requests Kustomer's API"; \
	  echo " receives, sends them through an outbox table, reads event archives"; \
	  echo " and keeps Kustomer's records as SQLite tables."; \
	} > $(DEB_ROOT)/DEBIAN/control && \
	chmod 644 $(DEB_ROOT)/DEBIAN/control $(DEB_ROOT)/DEBIAN/md5sums
	@mkdir -p dist
	dpkg-deb --root-owner-group --build $(DEB_ROOT) $@

# make bench [N=events]: time the functions against SQLite's json() over
# N generated events (default 1,000,000); see tests/bench.py.
.PHONY: bench
bench: deps
	@$(MAKE) --no-print-directory $(SO)
	@/usr/bin/python3 tests/bench.py --n $(or $(N),1000000) --so $(SO)

# make fuzz [FUZZ_SECONDS=60]: build the libFuzzer targets (clang) into
# build/fuzz/, write their seed corpora, run each for FUZZ_SECONDS; see
# tests/fuzz/run.sh.
.PHONY: fuzz
FUZZ_CC    ?= clang
FUZZ_FLAGS  = -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -fno-omit-frame-pointer \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -Isrc -Itests/fuzz $(VERSION_DEF)
FUZZ_EXT    = tests/fuzz/fuzz_common.c tests/fuzz/fuzz_common.h $(SRC) $(HDR) VERSION
FUZZ_TARGETS = fuzz_functions fuzz_json fuzz_http fuzz_sync fuzz_events fuzz_jsnum

# $(1) the target, $(2) extra flags, $(3) extra libraries
define FUZZ_RULE
build/fuzz/$(1): tests/fuzz/$(1).c $$(FUZZ_EXT) | check-deps
	@mkdir -p build/fuzz
	$$(FUZZ_CC) $$(FUZZ_FLAGS) $(2) $$(PKG_CFLAGS) -o $$@ tests/fuzz/$(1).c tests/fuzz/fuzz_common.c $$(SRC) -lsqlite3 $$(LIBS) $(3)
endef
$(eval $(call FUZZ_RULE,fuzz_functions,,))
$(eval $(call FUZZ_RULE,fuzz_json,,))
$(eval $(call FUZZ_RULE,fuzz_http,-DFETCH_SLEEP_MAX=0.01,-lpthread))
$(eval $(call FUZZ_RULE,fuzz_sync,-DPULL_SLEEP_MAX=0.01,-lpthread))
$(eval $(call FUZZ_RULE,fuzz_events,,))

build/fuzz/fuzz_jsnum: tests/fuzz/fuzz_jsnum.c src/jsnum.c src/kustomer.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_jsnum.c src/jsnum.c -lm

fuzz:
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="clang libclang-rt-14-dev"
	@command -v $(FUZZ_CC) >/dev/null || { echo "error: $(FUZZ_CC) not found: install clang and libclang-rt-14-dev (sudo apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(addprefix build/fuzz/,$(FUZZ_TARGETS))
	@/usr/bin/python3 tests/fuzz/seeds.py build/fuzz/corpus >/dev/null
	@FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) tests/fuzz/run.sh
