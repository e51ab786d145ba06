"""Observability of the gateway: Prometheus metrics (:mod:`.metrics`, the ``metrics``
extra) and OpenTelemetry spans after the GenAI semantic conventions (:mod:`.otel`, the
``otel`` extra). Both are imported only when used."""
