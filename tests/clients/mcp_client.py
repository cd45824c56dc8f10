"""docqa's MCP server (/mcp, Streamable HTTP) driven by the official `mcp` Python
package, as an agent would: list the tools and call each one, then the ways a call
can go wrong.

Run by tests/api/mcp.rs, which starts docqa and sets DOCQA_URL, DOCQA_KEY and
QUESTION. Prints one line a check; exits non-zero at the first that fails.
"""

import asyncio
import os
import sys

import httpx2

from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError

URL = os.environ["DOCQA_URL"] + "/mcp"
QUESTION = os.environ["QUESTION"]
TOOLS = ["ask", "get_page", "list_collections", "list_documents", "search"]


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


async def refused(session, tool, arguments):
    """The JSON-RPC error a call gets, or None if it answered."""
    try:
        await session.call_tool(tool, arguments)
    except MCPError as e:
        return e
    return None


async def main():
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {os.environ['DOCQA_KEY']}"})
    async with streamable_http_client(URL, http_client=client) as (read, write, *_):
        async with ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            names = sorted(t.name for t in listed.tools)
            check(names == TOOLS, names)
            for tool in listed.tools:
                check(tool.input_schema.get("type") == "object" and tool.description, tool)
            search_schema = next(t for t in listed.tools if t.name == "search").input_schema
            check("query" in search_schema["properties"] and "query" in search_schema.get("required", []),
                  search_schema)
            print("ok tools/list with input schemas")

            result = await session.call_tool("list_collections", {})
            check(not result.is_error, result)
            collections = [c["name"] for c in result.structured_content["collections"]]
            check("default" in collections, collections)
            print("ok list_collections")

            result = await session.call_tool("list_documents", {"collection": "default"})
            check(not result.is_error, result)
            documents = result.structured_content["documents"]
            terms = next(d for d in documents if d["filename"] == "terms.txt")
            check(terms["status"] == "ready" and terms["pages"] == 1, terms)
            print("ok list_documents")

            result = await session.call_tool("search", {"query": QUESTION, "top_k": 3})
            check(not result.is_error, result)
            hits = result.structured_content["results"]
            check(hits and hits[0]["filename"] == "terms.txt", hits)
            print("ok search")

            result = await session.call_tool("ask", {"question": QUESTION, "mode": "extractive"})
            check(not result.is_error, result)
            answer = result.structured_content
            check(answer["grounded"] and answer["citations"][0]["filename"] == "terms.txt", answer)
            text = result.content[0].text
            check("Sources:" in text and answer["citations"][0]["quote"] in text, text)
            print("ok ask: answer text and citations")

            result = await session.call_tool("get_page", {"document_id": terms["id"], "page": 1})
            check(not result.is_error, result)
            check("warranty period for all Acme devices is 24 months" in result.content[0].text, result)
            print("ok get_page")

            # A tool that ran and failed says so in its result; bad arguments are
            # invalid params; neither ends the session.
            result = await session.call_tool("search", {"query": QUESTION, "collection": "nowhere"})
            check(result.is_error and "no collection" in result.content[0].text, result)
            result = await session.call_tool("get_page", {"document_id": terms["id"], "page": 9})
            check(result.is_error and "no page 9" in result.content[0].text, result)
            # Bad arguments too (the MCP specification's tool errors, so an
            # agent can correct itself), with what was wrong.
            for tool, arguments, said in [
                ("search", {"query": QUESTION, "top_k": 0}, "top_k"),
                ("search", {"query": "   "}, "query"),
                ("search", {"querry": QUESTION}, "query"),
                ("get_page", {"document_id": "not-an-id", "page": 1}, "document_id"),
                ("get_page", {"document_id": terms["id"], "page": 0}, "page"),
                ("ask", {"question": QUESTION, "mode": "psychic"}, "psychic"),
            ]:
                result = await session.call_tool(tool, arguments)
                check(result.is_error and said in result.content[0].text, (tool, arguments, result))
            # An unknown tool is the protocol's error.
            error = await refused(session, "no_such_tool", {})
            check(error is not None and error.code in (-32602, -32601), error)
            result = await session.call_tool("list_collections", {})
            check(not result.is_error, result)
            print("ok errors are MCP errors, the session goes on")

    # Without a key: the client cannot open a session (mcp reports the HTTP
    # error as its own), and the HTTP answer is a 401 with its challenge.
    opened = False
    try:
        async with streamable_http_client(URL) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                opened = True
    except Exception:
        pass
    check(not opened, "a session without a key was opened")
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    async with httpx2.AsyncClient() as http:
        response = await http.post(URL, json=initialize,
                                   headers={"accept": "application/json, text/event-stream"})
    check(response.status_code == 401 and "Bearer" in response.headers.get("www-authenticate", ""),
          (response.status_code, response.headers))
    print("ok no key: 401")


asyncio.run(main())
