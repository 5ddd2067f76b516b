-- pgbench script for t/032_load.pl: list the workers.
SELECT load_list();
