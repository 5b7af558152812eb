# Vendored for tests from AgentGym (https://github.com/WooooDyy/AgentGym), commit
# 3ef9235d23e68e7c2920c5422ad957dc8ced5c6c, file agentenv/agentenv/controller/__init__.py.
# MIT License, Copyright (c) 2023 FudanNLP-Agent: see LICENSE in tests/server/agentgym_clients/.
# Unchanged below this header.
from .agent import (
    Agent,
    APIAgent,
    BaseChatTemplate,
    ChatGLM4Template,
    ChatMLTemplate,
    Llama2Template,
    Llama3Template,
)
from .env import BaseEnvClient, StepOutput
from .task import BaseTask
from .types import ActionFormat, ActionWithTought, ConversationMessage
from .utils import (
    BaseAdapter,
    Evaluator,
    extract_python_code_blocks,
    format_code_as_action_prompt,
    format_function_call_prompt,
    parse_python_code_comments,
)