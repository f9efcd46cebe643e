#!/bin/sh
# PostgreSQL init script for the local compose stack (run once, by the postgres image's entrypoint, on an
# empty data volume). One database per service, each owned by its own login role (which runs the
# migrations), and the service's runtime role <name>_app (no superuser, owns nothing; the migrations grant
# it what it needs, see eventkit/db_roles.py); no other role but the superuser may connect to it. The password is the compose stack's local-development one
# (APP_DB_PASSWORD); in Kubernetes PostgreSQL is managed outside and the DSNs come from Secrets.
set -eu

: "${APP_DB_PASSWORD:?APP_DB_PASSWORD must be set}"

for name in ${SERVICE_DATABASES:-intake scheduling billing reporting}; do
    echo "init-databases: role and database '$name'"
    psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v name="$name" -v password="$APP_DB_PASSWORD" -v app="${name}_app" \
        -v app_password="${name}-database-password-development-only" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE ROLE :"app" LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"name" TO :"name";
SQL
done
