#!/bin/sh
# The monitor action of the 2013 shell agent ocf:openstack:cinder-api, pid-only path (no
# monitoring credentials set), reduced to exactly the steps that path runs, for the benchmark's
# comparison (benchmarks/run.py runs it alternately with ours).
#
# Reproduced from openstack-resource-agents, ocf/cinder-api (Emilien Macchi, after Sebastien
# Han's nova-api agent), https://github.com/openstack-archive/openstack-resource-agents,
# Apache License 2.0.  The steps and their order are the original's: source ocf-shellfuncs,
# fill in the defaults, cinder_api_validate (run before every action but meta-data and usage),
# then cinder_api_monitor -> cinder_api_status (pid file, cat, ocf_run -warn kill -s 0), then
# ocf_log debug.  Everything else of the agent (start, stop, meta-data, the curl/Keystone v2
# branch taken only with credentials) is left out.
: ${OCF_FUNCTIONS_DIR=${OCF_ROOT}/lib/heartbeat}
. ${OCF_FUNCTIONS_DIR}/ocf-shellfuncs

OCF_RESKEY_binary_default="cinder-api"
OCF_RESKEY_config_default="/etc/cinder/cinder.conf"
OCF_RESKEY_user_default="cinder"
OCF_RESKEY_pid_default="$HA_RSCTMP/$OCF_RESOURCE_INSTANCE.pid"
: ${OCF_RESKEY_binary=${OCF_RESKEY_binary_default}}
: ${OCF_RESKEY_config=${OCF_RESKEY_config_default}}
: ${OCF_RESKEY_user=${OCF_RESKEY_user_default}}
: ${OCF_RESKEY_pid=${OCF_RESKEY_pid_default}}

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

    cinder_api_status
    rc=$?
    if [ $rc -ne $OCF_SUCCESS ]; then
        return $rc
    fi
    # (the original checks an authenticated URL here when os_username, os_password,
    # os_tenant_name and keystone_get_token_url are all set: not this path)
    ocf_log debug "OpenStack Cinder API (cinder-api) monitor succeeded"
    return $OCF_SUCCESS
}

case "$1" in
    monitor) ;;
    *) exit $OCF_ERR_UNIMPLEMENTED ;;
esac
cinder_api_validate || exit $?
cinder_api_monitor
