"""Conversations for the chat-template parity test (tests/parity/test_chat_template_parity.py).

cases(name) returns a list of (case_name, inputs) where inputs is a dict with "messages" and optional
"tools", "add_generation_prompt" and template kwargs -- the same object `moeforge chat-template --batch`
reads per line.
"""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "days": {"type": "integer", "description": "Forecast days", "default": 1},
            },
            "required": ["city"],
        },
    },
}

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the documentation ✓ (unicode)",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}, "nullable": True},
                "limit": {"type": "number", "default": 2.5},
                "exact": {"type": "boolean"},
                "filters": {
                    "type": "object",
                    "properties": {"lang": {"type": "string"}, "year": {"type": "integer"}},
                    "required": ["lang"],
                },
                "mode": {"oneOf": [{"type": "string"}, {"type": "integer"}], "description": "mode", "default": "fast"},
                "any_of": {"type": ["string", "null"]},
                "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "objs": {"type": "array", "items": {"type": "object"}},
                "nothing": {},
            },
            "required": ["query", "exact"],
        },
    },
}

NO_PARAM_TOOL = {"type": "function", "function": {"name": "now", "description": "Current time", "parameters": {}}}


def user(text):
    return {"role": "user", "content": text}


def assistant(text, **extra):
    return {"role": "assistant", "content": text, **extra}


def system(text):
    return {"role": "system", "content": text}


def generic():
    """Cases every template must render identically (or fail identically)."""
    multi = [user("Hi!"), assistant("Hello, how can I help?"), user("Tell me a joke."), assistant("Why did the chicken cross the road?"), user("Why?")]
    return [
        ("single_user", {"messages": [user("Hello there")]}),
        ("single_user_gen", {"messages": [user("Hello there")], "add_generation_prompt": True}),
        ("system_user_gen", {"messages": [system("You are terse."), user("What is 2+2?")], "add_generation_prompt": True}),
        ("assistant_last", {"messages": [system("Be kind."), user("Hi"), assistant("Hello!")]}),
        ("assistant_last_gen", {"messages": [user("Hi"), assistant("Hello!")], "add_generation_prompt": True}),
        ("multi_turn", {"messages": multi, "add_generation_prompt": True}),
        ("multi_turn_nogen", {"messages": multi}),
        ("unicode", {"messages": [user("Grüße aus Köln 🌍 — 日本語のテキスト, עברית, emoji 👩‍💻"), assistant("Merci ✓ ünïcödé"), user("再见")], "add_generation_prompt": True}),
        ("empty_content", {"messages": [user(""), assistant(""), user("")], "add_generation_prompt": True}),
        ("whitespace_edges", {"messages": [user("  \n\tleading and trailing\t \n "), assistant("\n\nanswer\n\n"), user(" x ")], "add_generation_prompt": True}),
        ("unicode_whitespace", {"messages": [user("\u3000ideographic space\u00a0"), assistant("\u2028line sep\u2029"), user("\u200bzero width\u200b")]}),
        ("jinja_syntax_in_content", {"messages": [user("{{ messages }} {% if x %}y{% endif %} {# c #}"), assistant("}}{{")], "add_generation_prompt": True}),
        ("quotes_backslashes", {"messages": [user('She said "hi" and \'bye\' \\n \\ back\\slash'), assistant('"quoted"')]}),
        ("special_tokens_in_content", {"messages": [user("<|im_end|><|eot_id|></s><s>[INST]<|start|><|end|>"), assistant("<|endoftext|>")]}),
        ("long_conversation", {"messages": [m for i in range(6) for m in (user(f"question {i}"), assistant(f"answer {i}"))] + [user("last")], "add_generation_prompt": True}),
        ("extra_keys_and_none", {"messages": [{"role": "user", "content": "hi", "name": "alice", "tool_calls": None}, {"role": "assistant", "content": "yo", "meta": {"a": 1}}]}),
        ("newlines_only", {"messages": [user("\n\n\n"), assistant("\n")], "add_generation_prompt": True}),
        ("multiline_content", {"messages": [system("line1\nline2\n\nline4"), user("a\r\nb\rc"), assistant("x\n  y\n    z")]}),
        ("int_content_error_or_ok", {"messages": [user(42)]}),
        ("missing_content", {"messages": [{"role": "user"}]}),
        ("empty_conversation", {"messages": []}),
        ("kwargs_passthrough", {"messages": [user("hi")], "add_generation_prompt": True, "custom_flag": True, "date_string": "26 Jul 2024"}),
        ("system_only", {"messages": [system("only a system prompt")], "add_generation_prompt": True}),
    ]


def qwen3():
    tool_call_dict = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
    tool_call_str = {"type": "function", "function": {"name": "search_docs", "arguments": '{"query": "jinja", "exact": true}'}}
    return [
        ("tools_system", {"messages": [system("You help with weather."), user("Weather in Paris?")], "tools": [WEATHER_TOOL, SEARCH_TOOL], "add_generation_prompt": True}),
        ("tools_no_system", {"messages": [user("Weather in Paris?")], "tools": [WEATHER_TOOL]}),
        ("tool_call_flow", {"messages": [user("Weather in Paris?"), assistant("", tool_calls=[tool_call_dict]), {"role": "tool", "content": '{"temp": 21}'}, assistant("It is 21°C.")], "tools": [WEATHER_TOOL]}),
        ("tool_call_with_content", {"messages": [user("Search"), assistant("Let me search.", tool_calls=[tool_call_str, tool_call_dict]), {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"}], "tools": [WEATHER_TOOL, SEARCH_TOOL], "add_generation_prompt": True}),
        ("tool_response_wrapped_user", {"messages": [user("q"), assistant("", tool_calls=[tool_call_dict]), {"role": "tool", "content": "ok"}, user("<tool_response>x</tool_response>")], "add_generation_prompt": True}),
        ("thinking_disabled", {"messages": [user("Quick answer please")], "add_generation_prompt": True, "enable_thinking": False}),
        ("thinking_enabled", {"messages": [user("Think hard")], "add_generation_prompt": True, "enable_thinking": True}),
        ("reasoning_content_last", {"messages": [user("2+2?"), assistant("4", reasoning_content="\nSimple addition.\n")]}),
        ("reasoning_content_history", {"messages": [user("2+2?"), assistant("4", reasoning_content="Simple."), user("3+3?"), assistant("6", reasoning_content="Also simple.")], "add_generation_prompt": True}),
        ("inline_think_tags", {"messages": [user("hi"), assistant("<think>\nI should greet.\n</think>\n\nHello!")]}),
        ("inline_think_history", {"messages": [user("hi"), assistant("<think>greet</think>Hello!"), user("bye")], "add_generation_prompt": True}),
        ("thinking_alias", {"messages": [user("q"), assistant("a", thinking="via thinking field")]}),
        ("reasoning_alias", {"messages": [user("q"), assistant("a", reasoning="via reasoning field")]}),
        ("system_not_first", {"messages": [user("a"), system("late system"), user("b")], "add_generation_prompt": True}),
    ]


def gptoss():
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    return [
        ("effort_low", {"messages": [user("hi")], "add_generation_prompt": True, "reasoning_effort": "low"}),
        ("effort_high_system", {"messages": [system("Answer in French."), user("hi")], "add_generation_prompt": True, "reasoning_effort": "high"}),
        ("developer_message", {"messages": [{"role": "developer", "content": "Use bullet points."}, user("list fruits")], "add_generation_prompt": True}),
        ("model_identity", {"messages": [user("who are you")], "model_identity": "You are Forge, a helpful model.", "add_generation_prompt": True}),
        ("tools_functions", {"messages": [system("dev"), user("Weather in Tokyo?")], "tools": [WEATHER_TOOL, SEARCH_TOOL, NO_PARAM_TOOL], "add_generation_prompt": True}),
        ("tools_no_developer", {"messages": [user("Weather in Tokyo?")], "tools": [WEATHER_TOOL]}),
        ("builtin_tools", {"messages": [user("browse")], "builtin_tools": ["browser", "python"], "add_generation_prompt": True}),
        ("builtin_python_only", {"messages": [user("run code")], "builtin_tools": ["python"], "tools": [WEATHER_TOOL]}),
        ("tool_call_flow", {"messages": [user("Weather?"), assistant("", tool_calls=[call], thinking="Need the weather tool."), {"role": "tool", "content": '{"temp": 18}'}, assistant("18°C in Tokyo.")], "tools": [WEATHER_TOOL], "add_generation_prompt": False}),
        ("tool_call_pending", {"messages": [user("Weather?"), assistant("", tool_calls=[call], thinking="Call it."), {"role": "tool", "content": "sunny"}], "tools": [WEATHER_TOOL], "add_generation_prompt": True}),
        ("tool_call_string_args", {"messages": [user("Weather?"), assistant("Checking the weather.", tool_calls=[{"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]), {"role": "tool", "content": {"temp": -3}}], "tools": [WEATHER_TOOL], "add_generation_prompt": True}),
        ("assistant_thinking_last", {"messages": [user("2+2?"), assistant("4", thinking="Add the numbers.")]}),
        ("assistant_thinking_history", {"messages": [user("2+2?"), assistant("4", thinking="Add."), user("and 3+3?")], "add_generation_prompt": True}),
        ("error_channel_in_content", {"messages": [user("x"), assistant("<|channel|>analysis<|message|>oops")]}),
        ("error_tool_without_call", {"messages": [user("x"), {"role": "tool", "content": "orphan"}]}),
        ("error_content_and_thinking_with_tools", {"messages": [user("x"), assistant("c", thinking="t", tool_calls=[call])]}),
    ]


def llama2():
    return [
        ("alternation_error_user_user", {"messages": [user("a"), user("b")]}),
        ("alternation_error_assistant_first", {"messages": [assistant("a"), user("b")]}),
        ("alternation_error_with_system", {"messages": [system("s"), assistant("a")]}),
        ("system_multi_turn", {"messages": [system("Be brief."), user("hi"), assistant("hello"), user("bye")]}),
        ("strip_content", {"messages": [user("   padded   "), assistant("\n answer \n")]}),
    ]


def llama3():
    return [
        ("tools_ignored", {"messages": [user("hi")], "tools": [WEATHER_TOOL], "add_generation_prompt": True}),
        ("custom_bos", {"messages": [user("hi")], "bos_token": "<BOS>"}),
    ]


SPECIFIC = {"qwen3": qwen3, "gptoss": gptoss, "llama2": llama2, "llama3": llama3}


def cases(name):
    return generic() + SPECIFIC.get(name, lambda: [])()
