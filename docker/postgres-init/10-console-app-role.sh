#!/bin/sh
# The console's runtime database role. The postgres image runs this once, when it initialises an empty
# data volume (/docker-entrypoint-initdb.d/); for an existing volume run it by hand (docs/operations.md).
#
# POSTGRES_USER (`console`) owns the tables and is used only by the one-shot `migrate` service. The web
# console, workers and scheduler connect as POSTGRES_APP_USER (`console_app`), which may read and write
# rows and nothing more: no TRUNCATE and no DDL, so it can neither empty the audit log nor disable the
# trigger that refuses UPDATE and DELETE of its rows.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set app_user="${POSTGRES_APP_USER:-console_app}" --set app_password="$POSTGRES_APP_PASSWORD" \
    --set owner="$POSTGRES_USER" --set db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
GRANT CONNECT ON DATABASE :"db" TO :"app_user";
GRANT USAGE ON SCHEMA public TO :"app_user";
-- Tables and sequences the owner creates from now on (every migration) ...
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO :"app_user";
-- ... and those that exist already (a database made before this role).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_user";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_user";
SQL
