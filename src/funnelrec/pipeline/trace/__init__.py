"""One request through the funnel, stage by stage, and "why not item X": what the browser
inspector (``/inspect``, ``funnelrec inspect``) shows. See docs/inspector.md."""

from funnelrec.pipeline.trace.build import TraceDepth, TraceRequest, trace_request
from funnelrec.pipeline.trace.labels import ItemLabels
from funnelrec.pipeline.trace.models import FunnelTrace, WhyNot

__all__ = ["FunnelTrace", "ItemLabels", "TraceDepth", "TraceRequest", "WhyNot", "trace_request"]
