--
-- Upgrading: CREATE EXTENSION dynbgw VERSION '1.0' followed by ALTER
-- EXTENSION dynbgw UPDATE gives exactly the objects of a fresh install of
-- the default version: the same members, definitions, privileges and
-- comments; and in both, everything the extension owns has a comment.
--

-- Every member of the extension with what defines it, one line each; not
-- the row and array types of its tables, views and types, which 18 lists
-- as members too.
\set members 'SELECT pg_describe_object(classid, objid, objsubid) AS member, coalesce(CASE classid WHEN ''pg_proc''::regclass THEN pg_get_functiondef(objid) || (SELECT coalesce(proacl::text, '''') FROM pg_proc WHERE oid = objid) WHEN ''pg_class''::regclass THEN pg_get_viewdef(objid) || (SELECT coalesce(relacl::text, '''') FROM pg_class WHERE oid = objid) WHEN ''pg_type''::regclass THEN (SELECT string_agg(attname || '' '' || format_type(atttypid, atttypmod), '', '' ORDER BY attnum) FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid WHERE t.oid = objid AND attnum > 0) END, '''') AS definition FROM pg_depend WHERE refclassid = ''pg_extension''::regclass AND refobjid = (SELECT oid FROM pg_extension WHERE extname = ''dynbgw'') AND deptype = ''e'' AND NOT (classid = ''pg_type''::regclass AND EXISTS (SELECT FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid WHERE t.oid = objid AND (t.typcategory = ''A'' OR c.relkind IN (''r'', ''v''))))'

-- What the extension owns that has no comment: its members as above, and
-- the columns, policies and triggers of its tables.
\set uncommented 'WITH m AS (SELECT classid, objid, objsubid FROM pg_depend WHERE refclassid = ''pg_extension''::regclass AND refobjid = (SELECT oid FROM pg_extension WHERE extname = ''dynbgw'') AND deptype = ''e''),'
\set uncommented :uncommented ' t AS (SELECT c.oid FROM m JOIN pg_class c ON m.classid = ''pg_class''::regclass AND c.oid = m.objid WHERE c.relkind = ''r'')'
\set uncommented :uncommented ' SELECT pg_describe_object(o.classid, o.objid, o.objsubid) AS uncommented FROM ('
\set uncommented :uncommented ' SELECT * FROM m WHERE NOT (classid = ''pg_type''::regclass AND EXISTS (SELECT FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid WHERE t.oid = objid AND (t.typcategory = ''A'' OR c.relkind IN (''r'', ''v''))))'
\set uncommented :uncommented ' UNION ALL SELECT ''pg_class''::regclass, a.attrelid, a.attnum FROM pg_attribute a JOIN t ON a.attrelid = t.oid WHERE a.attnum > 0 AND NOT a.attisdropped'
\set uncommented :uncommented ' UNION ALL SELECT ''pg_policy''::regclass, p.oid, 0 FROM pg_policy p JOIN t ON p.polrelid = t.oid'
\set uncommented :uncommented ' UNION ALL SELECT ''pg_trigger''::regclass, g.oid, 0 FROM pg_trigger g JOIN t ON g.tgrelid = t.oid WHERE NOT g.tgisinternal) o'
\set uncommented :uncommented ' WHERE NOT EXISTS (SELECT FROM pg_description d WHERE d.classoid = o.classid AND d.objoid = o.objid AND d.objsubid = o.objsubid) ORDER BY 1'

CREATE DATABASE regress_dynbgw_updated;
CREATE DATABASE regress_dynbgw_fresh;

\c regress_dynbgw_updated
CREATE EXTENSION dynbgw VERSION '1.0';
ALTER EXTENSION dynbgw UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'dynbgw';
SELECT md5(string_agg(member || ': ' || definition, E'\n' ORDER BY member)) AS updated
FROM (:members) m \gset
SELECT md5(string_agg(pg_describe_object(classoid, objoid, objsubid) || ': ' || description, E'\n' ORDER BY 1)) AS updated_comments
FROM pg_description WHERE objoid >= 16384 \gset
:uncommented;

\c regress_dynbgw_fresh
CREATE EXTENSION dynbgw;
SELECT extversion FROM pg_extension WHERE extname = 'dynbgw';
SELECT member FROM (:members) m ORDER BY member;
SELECT md5(string_agg(member || ': ' || definition, E'\n' ORDER BY member)) AS fresh
FROM (:members) m \gset
SELECT md5(string_agg(pg_describe_object(classoid, objoid, objsubid) || ': ' || description, E'\n' ORDER BY 1)) AS fresh_comments
FROM pg_description WHERE objoid >= 16384 \gset
:uncommented;

SELECT :'updated' = :'fresh' AS same_objects,
       :'updated_comments' = :'fresh_comments' AS same_comments;

\c contrib_regression
DROP DATABASE regress_dynbgw_updated;
DROP DATABASE regress_dynbgw_fresh;
