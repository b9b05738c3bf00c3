"""Models on servers: llama.cpp, vLLM, SGLang, Ollama or any OpenAI-compatible API.

    model = RemoteModel("http://127.0.0.1:8080/v1")     # answers tokenscope.lm.backend's protocol

One module per job: transport (HTTP, cancelling, errors a person reads, bounded reads),
detect (what the server is and can do), parsing (the shapes servers send), distribution (a
top-k list and the rest as one share, with the sampling knobs applied to it), generation
(the event stream as GenerationStep records) and model (RemoteModel itself). Nothing here
needs PyTorch.
"""

from tokenscope.lm.backend import is_server as is_remote
from tokenscope.lm.remote.detect import ServerInfo
from tokenscope.lm.remote.distribution import RemoteDistribution
from tokenscope.lm.remote.model import RemoteModel
from tokenscope.lm.remote.transport import (
    DEFAULT_KEY_ENV,
    RemoteError,
    remote_target,
    server_root,
    split_target,
    store_key,
    stored_key,
)

__all__ = [
    "DEFAULT_KEY_ENV",
    "RemoteDistribution",
    "RemoteError",
    "RemoteModel",
    "ServerInfo",
    "is_remote",
    "remote_target",
    "server_root",
    "split_target",
    "store_key",
    "stored_key",
]
