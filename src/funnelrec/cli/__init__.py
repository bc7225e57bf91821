"""The ``funnelrec`` command line."""
