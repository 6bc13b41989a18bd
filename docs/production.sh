#!/bin/sh
# How production runs: the README's Production section shows this file as it is, and CI's
# production smoke stage runs it. Run it from the app's folder, in its virtual environment,
# with the settings in the environment (REFERRALS_ENV=production, DATABASE_URL, SECRET_KEY,
# AUDIT_KEY, PUBLIC_BASE_URL, TRUSTED_PROXIES... see Configuration).
#
#   docs/production.sh check     name every missing or unsafe setting; exit 1 if the app
#                                would refuse to start
#   docs/production.sh migrate   bring the database to the latest schema (each release)
#   docs/production.sh web       the web server, behind a TLS-terminating proxy
#                                (WEB_WORKERS processes, default 4; BIND, default 0.0.0.0:8000)
#   docs/production.sh worker    one outbox worker: texts, exchange pushes, notifications;
#                                run one or more, on any machines
#
# Each command runs in the foreground until it is stopped (SIGTERM: the web server finishes
# its requests, a worker its job): give `web` and `worker` to your process supervisor.
set -eu
case "${1:-}" in
  check) exec flask --app app check-config ;;
  migrate) exec flask --app app db-upgrade ;;
  web)
    exec gunicorn --config python:referrals.gunicorn_conf \
      --workers "${WEB_WORKERS:-4}" --bind "${BIND:-0.0.0.0:8000}" app:app
    ;;
  worker) exec flask --app app worker ;;
  *)
    echo "usage: $0 check|migrate|web|worker" >&2
    exit 2
    ;;
esac
