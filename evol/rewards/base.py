"""The reward-model interface: one batched call scoring (conversation, answer) pairs.

A conversation is chat messages (`{"role", "content"}`, the last one the user's turn); an
answer is the assistant reply to score. `score` returns one float per pair, higher = better;
`compare` picks, for each conversation, the index of the best of its candidate answers.
Backends (a sequence-classification checkpoint, a generative judge over any agent spec, the
platform's judges, an OpenAI-compatible endpoint) implement `score`; a generative judge that
judges pairwise overrides `compare`. `None` in a score marks an item the RM could not score
(an unparseable judge reply): callers count it as wrong, never as a tie won.
"""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


class RewardModel:
    """Scores answers to conversations, in batches."""

    name = "rm"

    def score(self, conversations: list[list[Message]], answers: list[str]) -> list[float | None]:
        """One score per (conversation, answer) pair, higher = better."""
        raise NotImplementedError

    def compare(self, conversation: list[Message], candidates: list[str]) -> list[float | None]:
        """Scores of `candidates`, all answers to `conversation` (default: pointwise `score`)."""
        return self.score([conversation] * len(candidates), list(candidates))

    def compare_many(
        self, conversations: list[list[Message]], candidates: list[list[str]]
    ) -> list[list[float | None]]:
        """`compare` for many conversations at once. When `compare` is the pointwise default,
        all (conversation, answer) pairs go to `score` in one batched call; a backend that
        overrides `compare` is called once per conversation unless it overrides this too."""
        if type(self).compare is not RewardModel.compare:
            return [self.compare(conv, list(cands)) for conv, cands in zip(conversations, candidates)]
        return score_candidates(self, conversations, candidates)

    def take_failures(self) -> list[dict[str, Any]]:
        """The calls the backend could not read since the last call (a judge's unparseable
        replies: `{"reply": ..., "reason": ...}`), for the caller to log; emptied by the call."""
        return []

    def close(self) -> None:
        """Free what the backend holds (a model, a session)."""


def score_candidates(
    rm: RewardModel, conversations: list[list[Message]], candidates: list[list[str]]
) -> list[list[float | None]]:
    """Every conversation's candidates scored pointwise, all in one `rm.score` call."""
    flat_conversations = [conv for conv, cands in zip(conversations, candidates) for _ in cands]
    flat_answers = [answer for cands in candidates for answer in cands]
    flat = rm.score(flat_conversations, flat_answers) if flat_answers else []
    out, start = [], 0
    for cands in candidates:
        out.append(list(flat[start : start + len(cands)]))
        start += len(cands)
    return out
