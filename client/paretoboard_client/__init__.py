"""paretoboard's light client: `paretoboard submit / status / results` over HTTP (httpx, typer)."""

__version__ = "0.1.0"
