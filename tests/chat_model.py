"""A real GGUF with a chat template, for chat prompts: the embedded model is a base model
without one. Used by the tests (the chat_model fixture) and bench/generation_speed.py."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from benchkit.model_file import CACHE_DIR

# Gemma 3's chat template, as its instruction-tuned GGUFs carry it (tokenizer.chat_template)
GEMMA3_CHAT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""


def templated_copy(model_path: Path) -> Path:
    """The embedded model (a base model, no chat template) with Gemma 3's chat template added by
    gguf-py's gguf-new-metadata: a real GGUF that chat prompts are rendered for. Made once and
    cached beside the embedded model (writing the copy takes seconds to tens of seconds)."""
    digest = hashlib.sha256(GEMMA3_CHAT_TEMPLATE.encode()).hexdigest()[:12]
    target = CACHE_DIR / "models" / f"{model_path.stem}-chat-{digest}.gguf"
    if not target.exists():
        partial = target.with_suffix(f".partial-{os.getpid()}")
        tool = Path(sys.executable).parent / "gguf-new-metadata"
        args = ["--chat-template", GEMMA3_CHAT_TEMPLATE, "--force"]
        subprocess.run([str(tool), str(model_path), str(partial), *args], check=True, capture_output=True)
        os.replace(partial, target)
    return target
