-- pgbench script for t/032_load.pl: launch a random worker number, idle or
-- running a cheap command every 50 ms, with if_running 'error' (variants 0
-- and 1), 'skip' (2) or 'replace' (3).
\set n random(1, 8)
\set variant random(0, 3)
SELECT load_launch(:n, :variant);
