-- pgbench script for t/032_load.pl: stop a random worker number, by PID
-- (dynbgw_stop(dynbgw_pid(n))) or by number (dynbgw_stop(n => n)).
\set n random(1, 8)
\set by_pid random(0, 1)
SELECT load_stop(:n, :by_pid = 1);
