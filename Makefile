# dynbgw: launch, find and stop dynamic background workers from SQL
MODULE_big = dynbgw
OBJS = dynbgw.o dynbgw_worker.o
EXTENSION = dynbgw
DATA = dynbgw--1.0.sql
PGFILEDESC = "dynbgw - dynamic background workers from SQL"

REGRESS = setup launch stop workers jobs security
REGRESS_OPTS = --load-extension=dynbgw
ISOLATION = launch_stop
ISOLATION_OPTS = --load-extension=dynbgw

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
