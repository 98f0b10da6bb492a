#!/bin/sh
# Write the secret files docker-compose.yml reads, with random passwords, into ./secrets
# (a folder only its owner can enter). Existing files are kept: run it again safely.
# Files are world-readable so that the containers' unprivileged users can read their mounts;
# the folder's mode 0700 keeps other host users out.
set -eu
cd "$(dirname "$0")/.."
umask 022
mkdir -p secrets
chmod 0700 secrets
rand() { python3 -c 'import secrets; print(secrets.token_urlsafe(36))'; }
keep() { [ -s "secrets/$1" ]; }

keep postgres_password || rand > secrets/postgres_password
keep redis_password || rand > secrets/redis_password
keep paretoboard_secret_key || rand > secrets/paretoboard_secret_key
keep flower_auth || printf 'admin:%s\n' "$(rand)" > secrets/flower_auth
keep minio_password || rand > secrets/minio_password
pg=$(cat secrets/postgres_password)
redis=$(cat secrets/redis_password)
keep paretoboard_db || printf '{"url": "postgresql+psycopg://paretoboard:%s@postgres:5432/paretoboard"}\n' "$pg" > secrets/paretoboard_db
keep paretoboard_broker || printf '{"url": "redis://:%s@redis:6379/0", "result_backend": "redis://:%s@redis:6379/1"}\n' "$redis" "$redis" > secrets/paretoboard_broker
minio=$(cat secrets/minio_password)
keep paretoboard_storage || printf '{"s3_access_key": "paretoboard", "s3_secret_key": "%s"}\n' "$minio" > secrets/paretoboard_storage
chmod 0644 secrets/*
echo "secrets in $(pwd)/secrets"
