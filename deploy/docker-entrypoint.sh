#!/bin/sh
# The container's entry point: reads secrets from files, installs the plugins shipped in
# the image into the plugin volume, then runs `aihub "$@"` as PID 1 (it handles SIGTERM:
# in-flight streams finish, queued call records are written).
#
# - AIHUB_<KEY>_FILE=/run/secrets/x sets AIHUB_<KEY> to the file's content (Docker or
#   Kubernetes secrets), e.g. AIHUB_MASTER_KEY_FILE, AIHUB_ADMIN_TOKEN_FILE,
#   AIHUB_STORAGE__URL_FILE. The _FILE variable is removed before aihub starts: aihub
#   refuses AIHUB_* variables that are not configuration keys.
# - SHIPPED_PLUGINS=install (default) copies each library of /usr/lib/aihub/plugins into
#   the plugin directory when it differs (an upgraded image brings its plugins along);
#   `skip` leaves the directory alone. Libraries you added yourself are never touched.
set -eu

for assignment in $(env | grep -o '^AIHUB_[A-Z0-9_]*_FILE=' || true); do
    var="${assignment%=}"
    name="${var%_FILE}"
    eval "file=\${$var}"
    # shellcheck disable=SC2154 # set by the eval above
    if [ ! -r "$file" ]; then
        echo "aihub-entrypoint: $var names $file, which cannot be read" >&2
        exit 1
    fi
    value="$(cat "$file")"
    export "$name=$value"
    unset "$var"
done

shipped=/usr/lib/aihub/plugins
data_dir="${AIHUB_STORAGE__DATA_DIR:-/var/lib/aihub}"
plugin_dir="${AIHUB_PLUGINS__DIR:-$data_dir/plugins}"
if [ "${1:-}" = "serve" ] && [ "${SHIPPED_PLUGINS:-install}" = "install" ] && [ -d "$shipped" ]; then
    if mkdir -p "$plugin_dir" 2>/dev/null && [ -w "$plugin_dir" ]; then
        for lib in "$shipped"/*.so; do
            [ -e "$lib" ] || continue
            base="$(basename "$lib")"
            if ! cmp -s "$lib" "$plugin_dir/$base"; then
                # A hidden name, then a rename: a running aihub (another instance on a
                # shared volume) never maps a half-written library.
                tmp="$plugin_dir/.$base.${HOSTNAME:-host}.$$.tmp"
                cp "$lib" "$tmp"
                mv -f "$tmp" "$plugin_dir/$base"
                echo "aihub-entrypoint: installed $plugin_dir/$base" >&2
            fi
        done
    else
        echo "aihub-entrypoint: $plugin_dir is not writable; shipped plugins not installed" >&2
    fi
fi

exec aihub "$@"
