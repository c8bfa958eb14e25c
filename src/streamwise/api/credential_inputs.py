"""A chatflow's credentials, as inputs for the nodes that name them: what a build's `inject` takes.

A Flowise node names its credential record by id (`data.credential`, or `FLOWISE_CREDENTIAL_ID`
among its inputs: `GraphNode.credential`); its fields become inputs of that node, so a chatOpenAI
node whose credential is `{"openAIApiKey": "sk-..."}` is built with that key. They are set after
the request's overrides, so no request can replace them. A node naming a credential that is not
stored here (a Flowise export's) is built as if it named none: it uses the server's settings.
"""

from __future__ import annotations

import logging
from typing import Any

from streamwise.engine.graph import FlowGraph, reference_target
from streamwise.store.credentials import CredentialRepository

_SHOWN_ID_CHARS = 100
logger = logging.getLogger("streamwise.credentials")


async def credential_inputs(graph: FlowGraph, credentials: CredentialRepository) -> dict[str, dict[str, Any]]:
    """`{node_id: {field: value}}` for every node of the graph that names a credential."""
    found: dict[str, dict[str, Any]] = {}
    for node_id in graph.order:
        credential_id = graph.nodes[node_id].credential
        if credential_id is None:
            continue
        data = await credentials.decrypted(credential_id)
        if data is None:
            # A Flowise export names credentials of the server it came from; its nodes then use this
            # server's own settings (OPENAI_API_KEY), as they did before credentials were stored here.
            logger.debug(
                "node %s names credential %s, not stored here", node_id, credential_id[:_SHOWN_ID_CHARS]
            )
            continue
        # A value the build would take for a reference to another node is never one: it stays out.
        fields = {name: value for name, value in data.items() if reference_target(value) is None}
        if fields:
            found[node_id] = fields
    return found
