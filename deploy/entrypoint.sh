#!/bin/sh
# Entrypoint of the one secondopinion image: runs `python -m <service> <command>`.
#   SERVICE=intake  entrypoint            -> python -m intake serve
#   SERVICE=billing entrypoint migrate    -> python -m billing migrate
#   entrypoint reporting migrate          -> python -m reporting migrate   (service named as argument)
# Commands are those of the services' shared CLI: serve (default), migrate, rebuild, check.
set -eu

services="intake scheduling billing reporting desk"

is_service() {
    for known in $services; do
        [ "$1" = "$known" ] && return 0
    done
    return 1
}

service="${SERVICE:-}"
if [ "$#" -gt 0 ] && is_service "$1"; then
    service="$1"
    shift
fi

if [ -z "$service" ]; then
    echo "secondopinion: no service chosen; set SERVICE or pass one of: $services" >&2
    exit 64
fi
if ! is_service "$service"; then
    echo "secondopinion: unknown service '$service'; expected one of: $services" >&2
    exit 64
fi

if [ "$#" -eq 0 ]; then
    set -- serve
fi

exec python -m "$service" "$@"
