--
-- Upgrading: CREATE EXTENSION dynbgw VERSION '1.0' followed by ALTER
-- EXTENSION dynbgw UPDATE gives exactly the objects of a fresh install of
-- the default version: the same members, definitions and privileges.
--

-- Every member of the extension with what defines it, one line each; not
-- the row and array types of its tables, views and types, which 18 lists
-- as members too.
\set members 'SELECT pg_describe_object(classid, objid, objsubid) AS member, coalesce(CASE classid WHEN ''pg_proc''::regclass THEN pg_get_functiondef(objid) || (SELECT coalesce(proacl::text, '''') FROM pg_proc WHERE oid = objid) WHEN ''pg_class''::regclass THEN pg_get_viewdef(objid) || (SELECT coalesce(relacl::text, '''') FROM pg_class WHERE oid = objid) WHEN ''pg_type''::regclass THEN (SELECT string_agg(attname || '' '' || format_type(atttypid, atttypmod), '', '' ORDER BY attnum) FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid WHERE t.oid = objid AND attnum > 0) END, '''') AS definition FROM pg_depend WHERE refclassid = ''pg_extension''::regclass AND refobjid = (SELECT oid FROM pg_extension WHERE extname = ''dynbgw'') AND deptype = ''e'' AND NOT (classid = ''pg_type''::regclass AND EXISTS (SELECT FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid WHERE t.oid = objid AND (t.typcategory = ''A'' OR c.relkind IN (''r'', ''v''))))'

CREATE DATABASE regress_dynbgw_updated;
CREATE DATABASE regress_dynbgw_fresh;

\c regress_dynbgw_updated
CREATE EXTENSION dynbgw VERSION '1.0';
ALTER EXTENSION dynbgw UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'dynbgw';
SELECT md5(string_agg(member || ': ' || definition, E'\n' ORDER BY member)) AS updated
FROM (:members) m \gset

\c regress_dynbgw_fresh
CREATE EXTENSION dynbgw;
SELECT extversion FROM pg_extension WHERE extname = 'dynbgw';
SELECT member FROM (:members) m ORDER BY member;
SELECT md5(string_agg(member || ': ' || definition, E'\n' ORDER BY member)) AS fresh
FROM (:members) m \gset

SELECT :'updated' = :'fresh' AS same_objects;

\c contrib_regression
DROP DATABASE regress_dynbgw_updated;
DROP DATABASE regress_dynbgw_fresh;
