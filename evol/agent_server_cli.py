"""The `serve-agent` command line, kept apart from the server so that building `evol`'s
parser imports no Flask (a process that runs vLLM's CPU build must not hold Flask's
context proxies: vLLM inspects every loaded module). It loads the agent and hands it to
`evol.agent_server`, imported only when the command runs.

`python -m evol.agent_server_cli serve-agent ...` runs the command without the rest of `evol`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from server import AGENT_TOKEN_ENV as TOKEN_ENV


def cmd_serve_agent(args: argparse.Namespace) -> int:
    kwargs = {"device": args.device} if args.device else {}
    if args.model or args.agent.startswith("hf:"):
        # Clients re-send whole conversations: keep the recent ones' KV cache.
        kwargs["prefix_cache"] = 4 * args.max_batch if args.prefix_cache is None else args.prefix_cache
    if args.chat_template:
        try:
            kwargs["chat_template"] = Path(args.chat_template).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            print(f"evol: cannot read --chat-template: {error}", file=sys.stderr)
            return 2
    if args.model:
        if not Path(args.model).is_dir():
            print(f"evol: no checkpoint directory at {args.model}", file=sys.stderr)
            return 2
        spec = f"hf:{args.model}"
        name = args.name or Path(args.model).resolve().name
    else:
        spec, name = args.agent, args.name or args.agent
    from agents import load_agent
    from evol.agent_server import serve_agent

    try:
        agent = load_agent(spec, **kwargs)
    except (ValueError, OSError) as error:
        print(f"evol: cannot load {spec}: {error}", file=sys.stderr)
        return 2
    if getattr(agent, "needs_env", False):
        print(
            f"evol: {spec} acts by reading the episode's env, so it cannot answer plain chat requests; "
            "serve a model (hf:PATH, vllm:PATH) or an endpoint (openai:URL#MODEL)",
            file=sys.stderr,
        )
        return 2
    serve_agent(
        agent,
        name,
        host=args.host,
        port=args.port,
        threads=args.threads,
        token=args.token,
        max_queue=args.max_queue,
        max_batch=args.max_batch,
        extra_hosts=tuple(args.allowed_hosts or ()),
    )
    return 0


def add_serve_agent_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `serve-agent` on an argparse subparsers object (as `evol`'s CLI does)."""
    p = subparsers.add_parser(
        "serve-agent",
        help="serve a model as an OpenAI-compatible /v1/chat/completions endpoint (tools, logprobs, "
        "JSON response formats and streaming for local models)",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="PATH", help="a Hugging Face checkpoint directory")
    source.add_argument(
        "--agent", metavar="SPEC", help="any agent spec instead: hf:PATH, vllm:PATH, openai:URL#MODEL, ..."
    )
    p.add_argument(
        "--name",
        default=None,
        help="the model id clients use (default: the checkpoint folder's name, or the spec)",
    )
    p.add_argument(
        "--chat-template",
        metavar="FILE",
        default=None,
        help="a Jinja chat template replacing the tokenizer's (e.g. one with tool support, for tools requests)",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available)")
    p.add_argument(
        "--prefix-cache",
        type=int,
        default=None,
        help="local models: keep the KV cache of this many recent conversations (default: 4 x --max-batch; 0: off)",
    )
    p.add_argument(
        "--token", default=None, help=f"bearer token required on every route but /health (or set {TOKEN_ENV})"
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=16,
        help="requests that may wait behind the running batch (default 16); more get 503",
    )
    p.add_argument(
        "--max-batch", type=int, default=16, help="requests sharing one generate call at most (default 16)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="request threads (default: max-queue + max-batch + 4)"
    )
    p.add_argument(
        "--allowed-hosts",
        nargs="+",
        metavar="NAME",
        help="Host names the server answers to besides loopback names, IP addresses and --host ('*': any)",
    )
    p.set_defaults(func=cmd_serve_agent)
    return p


def main(argv: list[str] | None = None) -> int:
    """`python -m evol.agent_server_cli serve-agent ...`: the subcommand without the rest of `evol`."""
    parser = argparse.ArgumentParser(prog="evol")
    add_serve_agent_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
