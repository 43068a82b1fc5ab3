"""An agent host's view of `hb mcp`, through the official MCP Python SDK.

    python3 mcp_client.py stdio HB WS PROFILE [legacy]   hb mcp stdio started by the SDK
    python3 mcp_client.py http URL TOKEN [legacy]        streamable HTTP with a bearer token
    python3 mcp_client.py tools HB WS PROFILE            the tool names one profile offers
    python3 mcp_client.py call URL TOKEN TOOL ARGS [legacy]  one tool call over HTTP

`legacy` negotiates the initialize handshake of protocol versions before
2026-07-28 instead of the SDK's default discovery. The scenario checks what it
can on its own and prints one JSON report as its last line; the Rust test
asserts on the report.
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

NOTE = {
    "entity_id": "note",
    "desc": "Short notes with an embedding",
    "fields": {
        "title": {"type": "short-text", "desc": "What the note is about"},
        "body": "long-text",
        "emb": "vector[3]",
    },
}


def payload(result):
    """The structured result of a tool call, with its error flag."""
    body = result.structured_content
    if body is None and result.content:
        body = json.loads(result.content[0].text) if not result.is_error else {"error": result.content[0].text}
    return bool(result.is_error), body, result.content[0].text if result.content else ""


async def call(client, name, args):
    return payload(await client.call_tool(name, args))


async def scenario(client, legacy):
    report = {"protocol": client.protocol_version, "server": client.server_info.name if client.server_info else None}
    tools = (await client.list_tools()).tools
    report["tools"] = [t.name for t in tools]
    report["schemas"] = {t.name: t.input_schema for t in tools}

    err, body, _ = await call(client, "define_entity", {"entity": NOTE})
    assert not err, body
    err, described, _ = await call(client, "describe_entity", {"entity": "note"})
    assert not err, described
    report["describe"] = described

    seed = {"name": "Routing note", "title": "Where fields live", "body": "Vectors go to vec, the rest to main.",
            "emb": [1.0, 0.0, 0.0]}
    err, up, _ = await call(client, "upsert", {"entity": "note", "row": seed})
    assert not err, up
    report["upsert"] = up
    err, got, _ = await call(client, "get", {"object_id": up["object_id"]})
    assert not err, got
    report["get"] = got
    for i, (title, emb) in enumerate([("Lance keeps vectors", [0.9, 0.1, 0.0]), ("SQLite keeps rows", [0.0, 1.0, 0.0]),
                                      ("Postgres serves", [0.0, 0.0, 1.0])]):
        err, body, _ = await call(client, "upsert", {"entity": "note", "row": {"name": f"n{i}", "title": title, "emb": emb}})
        assert not err, body
    err, q, _ = await call(client, "query", {"entity": "note", "spec": {"filter": {"title": {"$like": "%keeps%"}},
                                                                         "select": ["name", "title"], "order": ["name"]}})
    assert not err, q
    report["query"] = q
    err, near, _ = await call(client, "query", {"entity": "note", "spec": json.dumps(
        {"near": {"field": "emb", "vector": [1.0, 0.0, 0.0], "top_k": 2}, "select": ["name"]})})
    assert not err, near
    report["near"] = near
    err, found, _ = await call(client, "query", {"entity": "note", "spec": {
        "search": {"fields": ["body"], "query": "+vectors main", "top_k": 5}, "select": ["name"]}})
    assert not err, found
    report["search"] = found
    err, capped, _ = await call(client, "sql", {"sql": "SELECT title FROM note ORDER BY title", "max_rows": 2})
    report["sql_capped"] = {"error": err, **capped}
    err, counted, _ = await call(client, "sql", {"sql": "SELECT count(*) AS n FROM note"})
    report["sql_count"] = {"error": err, **counted}
    err, body, text = await call(client, "sql", {"sql": "DELETE FROM note"})
    report["sql_delete"] = {"error": err, "text": text}
    err, n, _ = await call(client, "count", {"entity": "note"})
    report["count_after_delete"] = n
    err, body, text = await call(client, "describe_entity", {"entity": "nots"})
    report["unknown_entity"] = {"error": err, "text": text}
    err, body, text = await call(client, "get", {"entity": "note"})
    report["missing_argument"] = {"error": err, "text": text}
    err, body, text = await call(client, "upsert", {"entity": "note", "row": {"name": "bad", "emb": [1.0, 2.0]}})
    report["bad_value"] = {"error": err, "text": text}

    resources = (await client.list_resources()).resources
    report["resources"] = [str(r.uri) for r in resources]
    note_uri = next(str(r.uri) for r in resources if str(r.uri).endswith("/entity/note"))
    read = await client.read_resource(note_uri)
    report["resource_note"] = json.loads(read.contents[0].text)

    if not legacy:
        # 2026-07-28: list changes arrive on a subscriptions/listen stream.
        async with client.listen(resources_list_changed=True) as sub:
            err, body, _ = await call(client, "define_entity", {"entity": {"entity_id": "memo", "fields": {"text": "long-text"}}})
            assert not err, body
            event = await asyncio.wait_for(sub.__aiter__().__anext__(), timeout=10)
            report["listen_event"] = type(event).__name__
    return report


async def run_stdio(hb, ws, profile, legacy):
    params = StdioServerParameters(command=hb, args=["mcp", "stdio", "-w", ws, "--profile", profile],
                                   env={**os.environ})
    async with Client(params, mode="legacy" if legacy else "auto") as client:
        return await scenario(client, legacy)


async def run_http(url, token, legacy):
    report = {}
    async with httpx2.AsyncClient() as raw:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        r = await raw.post(url, json=init, headers=headers)
        report["no_token_status"] = r.status_code
        r = await raw.post(url, json=init, headers={**headers, "Authorization": "Bearer wrong"})
        report["wrong_token_status"] = r.status_code
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy" if legacy else "auto") as client:
            report.update(await scenario(client, legacy))
    return report


async def run_tools(hb, ws, profile):
    params = StdioServerParameters(command=hb, args=["mcp", "stdio", "-w", ws, "--profile", profile], env={**os.environ})
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        return {"tools": [t.name for t in tools],
                "read_only": {t.name: bool(t.annotations and t.annotations.read_only_hint) for t in tools}}


async def run_call(url, token, tool, args, legacy):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy" if legacy else "auto") as client:
            err, body, text = await call(client, tool, json.loads(args))
            return {"error": err, "body": body, "text": text}


def main():
    mode, *rest = sys.argv[1:]
    legacy = rest[-1:] == ["legacy"]
    if mode == "stdio":
        report = asyncio.run(run_stdio(rest[0], rest[1], rest[2], legacy))
    elif mode == "http":
        report = asyncio.run(run_http(rest[0], rest[1], legacy))
    elif mode == "call":
        report = asyncio.run(run_call(rest[0], rest[1], rest[2], rest[3], legacy))
    elif mode == "tools":
        report = asyncio.run(run_tools(rest[0], rest[1], rest[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
