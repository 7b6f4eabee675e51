"""The gRPC side of Envoy's ext_proc: a thin servicer and one processor per filter.

``servicer``   reads each ``Process`` stream and dispatches by message kind
``router``     the router-level filter: classify, authenticate, route, translate responses
``upstream``   the upstream-level filter: translate the request for the attempt's deployment
``messages``   building ``ProcessingResponse`` protos and reading attributes
"""
