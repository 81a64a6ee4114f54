#!/bin/bash
# The 2013 shell agent's full cinder-api monitor, authenticated path, moved to Keystone v3: the
# second yardstick of make bench (benchmarks/measure.py runs it alternately with our
# cached-token monitor, and measures what Keystone spends on its tokens).
#
# A reproduction of the monitor action of openstack-resource-agents' ocf/cinder-api (Emilien
# Macchi, after Sebastien Han's nova-api agent),
# https://github.com/openstack-archive/openstack-resource-agents, Apache License 2.0.  Its steps
# and their order: source ocf-shellfuncs, fill in the defaults, cinder_api_validate (run before
# every action but meta-data and usage), cinder_api_status (pid file, cat, ocf_run -warn kill -s
# 0), then, with credentials set, a new token from Keystone at every monitor (curl, its answer
# cut apart with tr, grep, cut and head) and one GET of the configured url with it (curl
# --write-out %{http_code}), then ocf_log debug.
#
# Changed from the original, and only this:
# * Keystone v3 instead of v2.0 (gone from Keystone since Queens): POST /v3/auth/tokens, the
#   token read from the X-Subject-Token header instead of the body's "id";
# * no secret on a command line: the original built the JSON body, password included, in
#   curl's arguments and passed the token with -H on curl's command line (both visible in ps).
#   Here the body comes from a file (token_request_file, mode 0600: curl --data @file) and the
#   token reaches curl on its standard input (-H @-, through printf, a bash builtin);
# * url is the authenticated GET of our monitor, /v3/{project_id}/types (the original's
#   default, /v1/, answers without a token on today's cinder-api).
# Start, stop, meta-data and the v2.0 parameters are left out.
: ${OCF_FUNCTIONS_DIR=${OCF_ROOT}/lib/heartbeat}
. ${OCF_FUNCTIONS_DIR}/ocf-shellfuncs

OCF_RESKEY_binary_default="cinder-api"
OCF_RESKEY_config_default="/etc/cinder/cinder.conf"
OCF_RESKEY_user_default="cinder"
OCF_RESKEY_pid_default="$HA_RSCTMP/$OCF_RESOURCE_INSTANCE.pid"
OCF_RESKEY_url_default="http://127.0.0.1:8776/v3/"
: ${OCF_RESKEY_binary=${OCF_RESKEY_binary_default}}
: ${OCF_RESKEY_config=${OCF_RESKEY_config_default}}
: ${OCF_RESKEY_user=${OCF_RESKEY_user_default}}
: ${OCF_RESKEY_pid=${OCF_RESKEY_pid_default}}
: ${OCF_RESKEY_url=${OCF_RESKEY_url_default}}

cinder_api_validate() {
    local rc

    check_binary $OCF_RESKEY_binary
    check_binary curl
    check_binary tr
    check_binary grep
    check_binary cut
    check_binary head

    if [ ! -f $OCF_RESKEY_config ]; then
        if ! ocf_is_probe; then
            ocf_log err "Config $OCF_RESKEY_config doesn't exist"
            return $OCF_ERR_INSTALLED
        fi
        ocf_log_warn "Config $OCF_RESKEY_config not available during a probe"
    fi

    getent passwd $OCF_RESKEY_user >/dev/null 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        ocf_log err "User $OCF_RESKEY_user doesn't exist"
        return $OCF_ERR_INSTALLED
    fi

    true
}

cinder_api_status() {
    local pid
    local rc

    if [ ! -f $OCF_RESKEY_pid ]; then
        ocf_log info "OpenStack Cinder API (cinder-api) is not running"
        return $OCF_NOT_RUNNING
    else
        pid=`cat $OCF_RESKEY_pid`
    fi

    ocf_run -warn kill -s 0 $pid
    rc=$?
    if [ $rc -eq 0 ]; then
        return $OCF_SUCCESS
    else
        ocf_log info "Old PID file found, but OpenStack Cinder API (cinder-api) is not running"
        return $OCF_NOT_RUNNING
    fi
}

cinder_api_monitor() {
    local rc
    local token
    local http_code

    cinder_api_status
    rc=$?
    if [ $rc -ne $OCF_SUCCESS ]; then
        return $rc
    fi

    if [ -n "$OCF_RESKEY_token_request_file" ] && [ -n "$OCF_RESKEY_keystone_get_token_url" ]; then
        token=`curl -s -D - -o /dev/null --data @"$OCF_RESKEY_token_request_file" \
            -H "Content-type: application/json" "$OCF_RESKEY_keystone_get_token_url" | \
            tr -d '\r' | grep -i '^x-subject-token:' | cut -d' ' -f2 | head --lines 1`
        http_code=`printf 'X-Auth-Token: %s\n' "$token" | \
            curl --write-out %{http_code} --output /dev/null -s -H @- "$OCF_RESKEY_url"`
        rc=$?
        if [ $rc -ne 0 ] || [ "$http_code" -ne 200 ]; then
            ocf_log err "Failed to connect to the OpenStack Cinder API (cinder-api): $rc and $http_code"
            return $OCF_NOT_RUNNING
        fi
    fi

    ocf_log debug "OpenStack Cinder API (cinder-api) monitor succeeded"
    return $OCF_SUCCESS
}

case "$1" in
    monitor) ;;
    *) exit $OCF_ERR_UNIMPLEMENTED ;;
esac
cinder_api_validate || exit $?
cinder_api_monitor
