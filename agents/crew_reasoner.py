"""The optional CrewAI reasoner: a bull analyst and a bear analyst argue from DATA independently, a portfolio
manager weighs both cases and answers one LLMTradeIntent JSON object.

``CrewChat`` is a live call like ``LiveChat``: the LLMReasoner around it does the gating, budgets, cassettes,
validation, evidence check and fallback, so a crew intent is held to the same rules as a single model's.
Each member has its own crewai LLM on the same OpenAI-compatible endpoint (CrewAI's native OpenAI provider),
so the journal gets one call per member with its own tokens. Install with the optional extra ``crew``.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

from agents.llm_answer import Answer
from agents.llm_client import Endpoint, describe_error, is_openai, json_object
from agents.llm_schema import model_json_schema, strict_json_schema
from prompts import PromptTemplate
from tools.errors import LLMError

MEMBERS = ("bull", "bear", "pm")
NODE_NAMES = {"bull": "crew.bull_analyst", "bear": "crew.bear_analyst", "pm": "crew.portfolio_manager"}


def crew_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("crewai") is not None


def _quiet_crewai() -> None:
    # no telemetry or trace upload attempts (there is no network to send them to, and they slow every kickoff)
    for name, value in (("CREWAI_DISABLE_TELEMETRY", "true"), ("OTEL_SDK_DISABLED", "true"),
                        ("CREWAI_TRACING_ENABLED", "false"), ("CREWAI_DISABLE_TRACKING", "true")):  # fmt: skip
        os.environ.setdefault(name, value)


class CrewChat:
    def __init__(
        self,
        endpoint: Endpoint,
        prompt: PromptTemplate,
        *,
        temperature: float,
        max_output_tokens: int,
        timeout_s: float,
        max_retries: int,
        seed: int | None,
    ) -> None:
        if not crew_installed():
            raise LLMError("the crew reasoner needs CrewAI: install the optional extra: pip install 'tradegraph[crew]'")
        for member in MEMBERS:
            for part in ("role", "goal", "task"):
                prompt.section(f"{member}_{part}")
        self.endpoint = endpoint
        self.prompt = prompt
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        if is_openai(endpoint.base_url):
            self.pm_format: dict[str, Any] = {"type": "json_schema", "json_schema": strict_json_schema()}
        else:  # llama.cpp turns a schema given with json_object into a grammar; other servers use plain JSON mode
            self.pm_format = {"type": "json_object", "schema": model_json_schema()}
        self.llm_kwargs: dict[str, Any] = {
            "model": endpoint.model, "base_url": endpoint.base_url, "custom_openai": True,
            "api_key": endpoint.api_key.get_secret_value() if endpoint.api_key else "not-needed",
            "temperature": temperature, "max_tokens": max_output_tokens, "timeout": timeout_s,
            "max_retries": max_retries, "seed": seed,
        }  # fmt: skip
        self.params: dict[str, Any] = {
            "temperature": temperature, "max_tokens": max_output_tokens, "timeout_s": timeout_s,
            "max_retries": max_retries, "seed": seed, "structured_output": f"crew pm {self.pm_format['type']}",
        }  # fmt: skip
        _quiet_crewai()

    def __call__(self, messages: list[tuple[str, str]]) -> Answer:
        from crewai import LLM, Agent, Crew, Process, Task

        system, user = messages[0][1], messages[1][1]
        called_at = int(time.time() * 1000)
        start = time.perf_counter()
        done: dict[str, float] = {}
        llms = {m: LLM(**self.llm_kwargs, **({"response_format": self.pm_format} if m == "pm" else {}))
                for m in MEMBERS}  # fmt: skip
        agents = {
            m: Agent(role=self.prompt.section(f"{m}_role"), goal=self.prompt.section(f"{m}_goal"), backstory=system,
                     llm=llms[m], max_iter=1, allow_delegation=False, verbose=False)
            for m in MEMBERS
        }  # fmt: skip

        def finished(member: str) -> Any:
            return lambda _output: done.__setitem__(member, time.perf_counter())

        tasks: dict[str, Any] = {}
        with warnings.catch_warnings():  # "function callbacks cannot be serialized": no checkpointing is used
            warnings.simplefilter("ignore", UserWarning)
            for m in MEMBERS:
                tasks[m] = Task(
                    description="{tradegraph_input}\n\n" + self.prompt.section(f"{m}_task"),
                    expected_output="one JSON object" if m == "pm" else "at most two sentences",
                    agent=agents[m],
                    context=[tasks["bull"], tasks["bear"]] if m == "pm" else [],
                    callback=finished(m),
                )
        crew = Crew(agents=list(agents.values()), tasks=list(tasks.values()), process=Process.sequential,
                    verbose=False, memory=False)  # fmt: skip
        try:
            out = crew.kickoff(inputs={"tradegraph_input": user})
        except Exception as exc:  # crewai wraps the endpoint's errors; name the cause
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            return Answer(kind="error", error=f"crew: {describe_error(cause, self.timeout_s, self.max_retries)}",
                          latency_ms=(time.perf_counter() - start) * 1000, called_at=called_at)  # fmt: skip
        latency = (time.perf_counter() - start) * 1000
        outputs = [str(t.raw) for t in out.tasks_output]
        members = []
        previous = start
        for m, text in zip(MEMBERS, outputs, strict=False):
            usage = llms[m].get_token_usage_summary()
            ended = done.get(m, previous)
            members.append({"node": NODE_NAMES[m], "output": text, "input_tokens": int(usage.prompt_tokens),
                            "output_tokens": int(usage.completion_tokens),
                            "latency_ms": round((ended - previous) * 1000, 1)})  # fmt: skip
            previous = ended
        common: dict[str, Any] = {
            "raw_response": outputs[-1] if outputs else None,
            "input_tokens": sum(m["input_tokens"] for m in members),
            "output_tokens": sum(m["output_tokens"] for m in members),
            "latency_ms": latency,
            "called_at": called_at,
            "extra": {"members": members},
        }
        if not outputs or not outputs[-1].strip():
            return Answer(kind="error", error="crew: the portfolio manager returned nothing", **common)
        arguments, problem = json_object(outputs[-1])
        if arguments is None:
            return Answer(kind="error", error=f"crew: no structured answer from the portfolio manager: {problem}",
                          **common)  # fmt: skip
        return Answer(kind="answer", arguments=arguments, **common)
