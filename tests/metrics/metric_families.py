"""The metric families wsvisor exports, in one place for the tests that check them.

test_prometheus_scrape.py asserts that a running wsvisor exports exactly these (with their
types); test_deploy_rules.py asserts that the alert rules and the Grafana dashboard query only
these (plus Prometheus' own `up` and `ALERTS`), so a renamed metric breaks a test instead of
silently emptying a dashboard panel or muting an alert.

The source of truth is supervisor/metrics.cc and supervisor/scrape_collectors.cc; docs/metrics.md
describes each family for users.
"""

# name -> (type, labels other than the copied endpoint labels and Prometheus' job/instance)
FAMILIES = {
    "wsvisor_endpoint_up": ("gauge", ("endpoint",)),
    "wsvisor_endpoint_flapping": ("gauge", ("endpoint",)),
    "wsvisor_endpoints": ("gauge", ("health",)),
    "wsvisor_heartbeat_rtt_seconds": ("histogram", ("endpoint",)),
    "wsvisor_heartbeats_sent_total": ("counter", ()),
    "wsvisor_heartbeat_failures_total": ("counter", ("reason",)),
    "wsvisor_connection_attempts_total": ("counter", ("result",)),
    "wsvisor_health_transitions_total": ("counter", ("to",)),
    "wsvisor_endpoint_last_transition_timestamp_seconds": ("gauge", ("endpoint",)),
    "wsvisor_config_reloads_total": ("counter", ("result",)),
    "wsvisor_max_endpoints": ("gauge", ()),
    "wsvisor_endpoints_stored_spec_invalid": ("gauge", ()),
    "wsvisor_probes_total": ("counter", ("result",)),
    "wsvisor_watch_streams": ("gauge", ()),
    "wsvisor_max_watch_streams": ("gauge", ()),
    "wsvisor_watch_streams_exhausted_total": ("counter", ("reason",)),
    "wsvisor_build_info": ("gauge", ("version", "revision")),
    # The wsvisor binary's allocator's count (service/allocator_settings.cc).
    "wsvisor_heap_allocated_bytes": ("gauge", ()),
    "grpc_server_started_total": ("counter", ("grpc_service", "grpc_method", "grpc_type")),
    "grpc_server_handled_total": ("counter",
                                  ("grpc_service", "grpc_method", "grpc_type", "grpc_code")),
    "grpc_server_handling_seconds": ("histogram", ("grpc_service", "grpc_method", "grpc_type")),
    "process_cpu_seconds_total": ("counter", ()),
    "process_resident_memory_bytes": ("gauge", ()),
    "process_virtual_memory_bytes": ("gauge", ()),
    "process_open_fds": ("gauge", ()),
    "process_max_fds": ("gauge", ()),
    "process_start_time_seconds": ("gauge", ()),
}

# Families whose series carry the `endpoint` label (and the copied endpoint labels); absent with
# --metrics-per-endpoint=false.
PER_ENDPOINT_FAMILIES = (
    "wsvisor_endpoint_up",
    "wsvisor_endpoint_flapping",
    "wsvisor_heartbeat_rtt_seconds",
    "wsvisor_endpoint_last_transition_timestamp_seconds",
)

# The values of the fixed label sets, as the exposition spells them.
CONNECTION_RESULTS = ("success", "dns", "connection_refused", "connect_timeout", "tls",
                      "handshake_rejected", "network_error")
HEALTH_VALUES = ("unknown", "healthy", "unhealthy", "flapping")

# prometheus-cpp's Exposer adds families about itself (exposer_scrapes_total, ...); they are not
# wsvisor's and are left out of the checks.
FOREIGN_PREFIXES = ("exposer_",)

# Series names a histogram family exposes besides its own name.
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")

# Series that Prometheus makes itself and that rules and dashboards may use.
PROMETHEUS_SERIES = ("up", "ALERTS", "ALERTS_FOR_STATE")


def family_of(series_name):
    """The family a series name belongs to (histograms expose _bucket, _count and _sum), or None
    if wsvisor exports no such family."""
    if series_name in FAMILIES:
        return series_name
    for suffix in HISTOGRAM_SUFFIXES:
        base = series_name[: -len(suffix)]
        if series_name.endswith(suffix) and FAMILIES.get(base, ("",))[0] == "histogram":
            return base
    return None
