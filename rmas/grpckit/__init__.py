"""The gRPC toolkit shared by the hub server (:mod:`rmas.server`) and national nodes
(:mod:`rmas.remote`): neither imports the other, both import this.

- :mod:`~rmas.grpckit.mapping`: protobuf <-> domain translation (documents, records, cards,
  results in the caller's view, PAXLST answers);
- :mod:`~rmas.grpckit.lookup`: the provider protocol's requests and answers, for the hub's
  client of a node and for the node;
- :mod:`~rmas.grpckit.errors`: rich statuses (INVALID_ARGUMENT with field violations,
  RESOURCE_EXHAUSTED with a retry delay);
- :mod:`~rmas.grpckit.interceptors`: :class:`~rmas.grpckit.interceptors.HandlerInterceptor` and
  :func:`~rmas.grpckit.interceptors.wrap_behavior`, the one place a handler is wrapped;
- :mod:`~rmas.grpckit.auth`: the caller's certificate identity, the access interceptor, the
  admitted caller (:func:`~rmas.grpckit.auth.current_caller`).

Where ``*_pb2`` messages are used (tests/test_imports.py keeps the list): the toolkit's
:mod:`~rmas.grpckit.mapping` and :mod:`~rmas.grpckit.lookup` for every message the hub and a
node read or write, and :mod:`~rmas.grpckit.errors` for google.rpc's status details. Besides,
only the edges that must name a message type:

- the servicers' thin edge: ``rmas.server.check_service`` (request and response types of the check
  RPCs, the manifest's answer-size bound), ``rmas.server.flight_service`` (the flight conversation's
  status changes, acknowledgments and overrides), ``rmas.server.admin_service`` (writes the
  ``StatusResponse`` from a ``HubSnapshot``), ``rmas.remote.node`` (Describe and the lookup
  responses), the server and node lifecycles (``rmas.server.app``, ``rmas.remote.node``: service
  registration, health's SERVING);
- gRPC clients, which build requests and read answers on the caller's side:
  ``rmas.remote.client`` (the hub's client of a node: its stub, the Describe it keeps, the
  answer types it checks), ``rmas.remote.changefeed`` (its client of a node's ``WatchChanges``
  stream), ``rmas.remote.conformance`` and ``rmas.remote.conformance_changes`` (the kit that
  probes a node), ``rmas.client``, ``rmas.check_cli`` and ``rmas.cli`` (the command line's:
  ``rmas check``, ``rmas status``, ``rmas paxlst``) and ``rmas.flights_cli`` (``rmas iapi watch``,
  ``rmas override``).

The console (:mod:`rmas.console`) names none: it renders the hub's snapshot and the check
pipeline's outcome directly.
"""
