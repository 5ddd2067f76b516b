--
-- The grant role dynbgw_user: CREATE EXTENSION makes it, or uses an existing
-- one only if granting dynbgw's rights to it hands them to nobody unforeseen.
--

-- dynbgw made it (in setup), and its comment says so.
SELECT rolcanlogin, shobj_description(oid, 'pg_authid') AS comment
FROM pg_roles WHERE rolname = 'dynbgw_user';

-- Members granted since do not stop another database from creating the
-- extension with the role the first one made.
CREATE ROLE regress_dynbgw_member;
CREATE ROLE regress_dynbgw_admin;
GRANT dynbgw_user TO regress_dynbgw_member;
CREATE DATABASE regress_dynbgw_second;
\c regress_dynbgw_second
CREATE EXTENSION dynbgw;
SELECT has_function_privilege('regress_dynbgw_member',
    'dynbgw_launch'::regproc,
    'EXECUTE') AS member_may_launch;
\c contrib_regression
DROP DATABASE regress_dynbgw_second;

-- A role of that name that dynbgw did not make is refused (55000) while it
-- may log in or has attributes, while a role that is not a superuser may
-- administer it, or while it has members.  (No error context: from 18 it
-- quotes the extension script.)
\set SHOW_CONTEXT never
DROP EXTENSION dynbgw;
DROP ROLE dynbgw_user;
CREATE ROLE dynbgw_user LOGIN;
CREATE EXTENSION dynbgw;
\echo :LAST_ERROR_SQLSTATE
ALTER ROLE dynbgw_user NOLOGIN CREATEDB;
CREATE EXTENSION dynbgw;
\echo :LAST_ERROR_SQLSTATE
ALTER ROLE dynbgw_user NOCREATEDB;
GRANT dynbgw_user TO regress_dynbgw_admin WITH ADMIN OPTION;
CREATE EXTENSION dynbgw;
\echo :LAST_ERROR_SQLSTATE
REVOKE dynbgw_user FROM regress_dynbgw_admin;
GRANT dynbgw_user TO regress_dynbgw_member;
CREATE EXTENSION dynbgw;
\echo :LAST_ERROR_SQLSTATE
REVOKE dynbgw_user FROM regress_dynbgw_member;
\set SHOW_CONTEXT errors
SELECT count(*) AS extensions FROM pg_extension WHERE extname = 'dynbgw';

-- A safe one, NOLOGIN with no attributes and no members, is used.
CREATE EXTENSION dynbgw;
SELECT has_function_privilege('dynbgw_user',
    'dynbgw_stop'::regproc, 'EXECUTE') AS grant_role_may_stop;

DROP ROLE regress_dynbgw_member, regress_dynbgw_admin;
