# Makefile - build, test and install Postern.
#
#   make              build everything into build/
#   make SANITIZE=1   build with ASan+UBSan into build-san/
#   make check        sanitizer build, unit tests (cmocka), integration tests (pytest)
#   make run          private instance from ./run in the foreground
#   make install      PREFIX=/usr DESTDIR=...
#
# Layout: lib/**/*.c becomes one static library; every other top-level
# folder holding C sources is one program named after the folder; every
# tests/unit/test_*.c is one cmocka test program.

CC       ?= gcc
PYTHON   ?= /usr/bin/python3
PREFIX   ?= /usr/local
DESTDIR  ?=
SBINDIR  ?= $(PREFIX)/sbin
BINDIR   ?= $(PREFIX)/bin
DAEMONDIR ?= $(PREFIX)/libexec/postern
MANDIR   ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc/postern
SHAREDIR ?= $(PREFIX)/share/postern

ifeq ($(SANITIZE),1)
BUILD    ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      := -O1 -g
else
BUILD    ?= build
SANFLAGS :=
OPT      := -O2 -g
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
            -Wstrict-prototypes -Wmissing-prototypes -Wvla
DEFS     := -D_GNU_SOURCE -DDEF_CONFIG_DIR='"$(SYSCONFDIR)"' \
            -DDEF_DAEMON_DIR='"$(DAEMONDIR)"' -DDEF_COMMAND_DIR='"$(SBINDIR)"'
CFLAGS   ?= $(OPT)
ALL_CFLAGS := -std=c17 $(WARN) $(DEFS) $(CFLAGS) $(SANFLAGS) -Ilib -MMD -MP
LDFLAGS  ?=
LIBS     := -Wl,--as-needed -lssl -lcrypto -ldb -lcap -lpcre2-8 -levent_openssl -levent -lunbound -lcrypt

LIB_SRCS := $(sort $(shell find lib -name '*.c'))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIBA     := $(BUILD)/libpostern.a

NOT_PROGS := lib tests bench docs conf man mk run build build-san
PROG_DIRS := $(sort $(filter-out $(NOT_PROGS),$(patsubst %/,%,$(dir $(wildcard */*.c)))))
PROGS    := $(PROG_DIRS:%=$(BUILD)/bin/%)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Small programs that integration tests run as stand-in services or peers.
HELPER_SRCS := $(sort $(wildcard tests/helpers/*.c))
HELPER_BINS := $(HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/helpers/%)

.PHONY: all deps check unit integration run install clean format lint bench
.DEFAULT_GOAL := all
# Keep objects: they are intermediate files of the program rules.
.SECONDARY:

all: deps
	@$(MAKE) --no-print-directory build-all

.PHONY: build-all
build-all: $(PROGS)

deps:
	@sh mk/deps.sh

# Objects depend on the compiler flags too: a changed PREFIX or SANITIZE
# rebuilds what it must (the install paths are compiled in).
FLAGS_STAMP := $(BUILD)/.cflags
$(shell mkdir -p $(BUILD); echo '$(CC) $(ALL_CFLAGS) $(LIBS)' | cmp -s - $(FLAGS_STAMP) || \
	echo '$(CC) $(ALL_CFLAGS) $(LIBS)' > $(FLAGS_STAMP))

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBA): $(LIB_OBJS)
	@rm -f $@
	@echo "  AR      $@"
	@ar rcs $@ $^

# One program per folder: all of its .c files.
.SECONDEXPANSION:
PERCENT := %
$(BUILD)/bin/%: $$(patsubst $$(PERCENT).c,$(BUILD)/$$(PERCENT).o,$$(wildcard %/*.c)) $(LIBA)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBA) $(LIBS)

$(BUILD)/tests/helpers/%: $(BUILD)/tests/helpers/%.o $(LIBA)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIBA)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LIBS) -lcmocka

# make check: the sanitizer build, then every unit test, then pytest.
check: deps
	@$(MAKE) --no-print-directory SANITIZE=1 build-all unit-bins test-helpers
	@$(MAKE) --no-print-directory SANITIZE=1 unit integration

.PHONY: unit-bins test-helpers
unit-bins: $(UNIT_BINS)
test-helpers: $(HELPER_BINS)

unit: unit-bins
	@sh mk/run-unit.sh $(UNIT_BINS)

# Tests that run make themselves must not inherit this make's variables
# (SANITIZE=1 would leak into their builds through MAKEFLAGS).
integration: test-helpers
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE \
	POSTERN_BUILD=$(abspath $(BUILD)) POSTERN_SRC=$(CURDIR) \
	    $(PYTHON) -m pytest -q -ra tests/integration $(PYTEST_ARGS)

run: all
	@sh mk/run.sh $(BUILD)

bench: all
	@for b in bench/*.py; do [ -f "$$b" ] && POSTERN_BUILD=$(abspath $(BUILD)) POSTERN_SRC=$(CURDIR) $(PYTHON) $$b; done; true

install: all
	sh mk/install.sh "$(DESTDIR)" "$(BUILD)" "$(SBINDIR)" "$(DAEMONDIR)" "$(MANDIR)" "$(SYSCONFDIR)" "$(SHAREDIR)"

format:
	clang-format -i $$(find lib $(PROG_DIRS) tests/unit -name '*.[ch]')

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --suppress=missingIncludeSystem -Ilib $$(find lib $(PROG_DIRS) -name '*.c')

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
