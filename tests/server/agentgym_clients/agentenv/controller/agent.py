# A shim for tests, in place of AgentGym's agentenv/agentenv/controller/agent.py (commit
# 3ef9235d23e68e7c2920c5422ad957dc8ced5c6c), which loads torch, transformers' models and openai to run
# language models. The env clients and BaseTask only name these classes; nothing here runs a model.


class BaseChatTemplate:
    pass


class ChatMLTemplate(BaseChatTemplate):
    pass


class Llama2Template(BaseChatTemplate):
    pass


class Llama3Template(BaseChatTemplate):
    pass


class ChatGLM4Template(BaseChatTemplate):
    pass


class Agent:
    """AgentGym's local-model agent (not used by these tests)."""


class APIAgent:
    """AgentGym's API agent: `generate(conversation) -> (text, reasoning)`; a test subclasses it."""

    def generate(self, conversation):
        raise NotImplementedError
