# dynbgw: launch, find and stop dynamic background workers from SQL
MODULE_big = dynbgw
OBJS = dynbgw.o dynbgw_at_commit.o dynbgw_authority.o dynbgw_command.o \
	dynbgw_compat.o dynbgw_launch_protocol.o dynbgw_persist.o dynbgw_pool.o \
	dynbgw_registry.o dynbgw_restore.o dynbgw_result.o dynbgw_result_keep.o \
	dynbgw_result_store.o dynbgw_schedule.o dynbgw_slot.o dynbgw_slot_read.o \
	dynbgw_status.o dynbgw_stop_protocol.o dynbgw_task.o dynbgw_task_queue.o \
	dynbgw_wake.o dynbgw_worker.o dynbgw_worker_file.o
EXTENSION = dynbgw
DATA = dynbgw--1.0.sql dynbgw--1.0--1.1.sql dynbgw--1.1--1.1.1.sql \
	dynbgw--1.1.1--1.2.sql dynbgw--1.2--1.3.sql dynbgw--1.3--1.4.sql
PGFILEDESC = "dynbgw - dynamic background workers from SQL"
# Only entry points and SQL-callable functions can be loaded by name.
PG_CFLAGS = -fvisibility=hidden

REGRESS = setup launch stop workers jobs outcomes schedules persist security grant_role wake results pools upgrade
REGRESS_OPTS = --load-extension=dynbgw
ISOLATION = launch_stop
ISOLATION_OPTS = --load-extension=dynbgw
# The TAP tests in t/ start servers of their own and take minutes, so
# "make installcheck" leaves them out: test/run runs them.

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Not PGXS targets, hence after the include (the first target is the
# default).  Objects follow the shared headers, the version shims included.
$(OBJS) $(OBJS:.o=.bc): dynbgw.h dynbgw_compat.h

# Compile against the headers of every supported server version (13, 15,
# 17, 18, 19) with warnings as errors.
.PHONY: compile-check bench dist
compile-check:
	bash test/compile-check

# Measure the installed extension against its baselines (bench/results.md).
bench:
	bash bench/run

# A PGXN release: the committed tree at HEAD, as dynbgw-VERSION.zip with
# META.json's version (t/040_meta.pl holds it to dynbgw.control's).
DIST_VERSION = $(shell sed -n '0,/"version"/s/^ *"version": *"\([^"]*\)".*/\1/p' META.json)
dist:
	git archive --format=zip --prefix=$(EXTENSION)-$(DIST_VERSION)/ \
		-o $(EXTENSION)-$(DIST_VERSION).zip HEAD
