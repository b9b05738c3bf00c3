"""Model servers already running on this machine, found on their usual ports.

    for found in find_local_servers():
        print(found.url, found.kind, found.models)

Loopback only: nothing here looks beyond 127.0.0.1. Each port gets one short try (a port with
nothing on it is refused at once); a server is named by what it answers: `tokenscope serve`
its /tokenscope, llama.cpp its /props, anything else OpenAI-style its /v1/models.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenscope.lm.remote.transport import RemoteError, Server

#: (port, the server usually there): tokenscope serve, llama.cpp's llama-server, vLLM,
#: SGLang, Ollama
USUAL_PORTS = ((8000, "tokenscope serve or vLLM"), (8080, "llama.cpp"), (30000, "SGLang"),
               (11434, "Ollama"))  # fmt: skip
TIMEOUT_S = 1.0


@dataclass(frozen=True)
class FoundServer:
    url: str  # "http://127.0.0.1:8000/v1"
    kind: str  # "Tokenscope", "llama.cpp" or "OpenAI-compatible"
    models: tuple[str, ...]


def find_local_servers(
    ports: tuple[tuple[int, str], ...] | None = None, timeout: float = TIMEOUT_S
) -> list[FoundServer]:
    """The servers answering on this machine's usual ports (USUAL_PORTS), in that order."""
    found = []
    for port, _usual in USUAL_PORTS if ports is None else ports:
        url = f"http://127.0.0.1:{port}/v1"
        server = Server(url, timeout=timeout, keyless=True)  # no key for whoever is there
        try:
            listing = server.json("/v1/models")
        except RemoteError:
            continue  # nothing there, or not a model server
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            continue
        models = tuple(str(m["id"]) for m in data if isinstance(m, dict) and m.get("id"))
        if isinstance(server.probe("/tokenscope"), dict):
            kind = "Tokenscope"
        elif isinstance(server.probe("/props"), dict):
            kind = "llama.cpp"
        else:
            kind = "OpenAI-compatible"
        found.append(FoundServer(url, kind, models))
    return found
