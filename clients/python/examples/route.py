"""An example router: ask outcomed which model to use, call it, report what happened."""
import outcomed

client = outcomed.Client(fail_open=True, timeout=0.05)   # never let outcomed stop the router


def route(task, prompt, models, llm):
    ranking = client.rank(task, candidates=models,        # None: outcomed unavailable
                          exclude_degraded=True)         # leave failing models out
    if ranking and ranking["ranked"]:
        model = ranking["ranked"][0]["model"]              # best first; degraded models left out
    else:
        model = models[0]                                  # no answer, or every model degraded
    with client.call(model, task, reason="ranked first") as call:
        reply = llm(model, prompt)                         # an exception reports `fail`
        call.tokens(reply.input_tokens, reply.output_tokens)
    return reply, call


if __name__ == "__main__":
    class Reply:                                           # a stand-in for a real LLM call
        def __init__(self, model, prompt):
            self.text = f"[{model}] def parse(s): ..."
            self.input_tokens, self.output_tokens = len(prompt.split()), 6

    reply, call = route("code", "write a parser", ["gpt-4o", "qwen3-4b"], llm=Reply)
    call.outcome("accepted", 0.9)                          # when the user keeps the answer
    print(call.model, call.trace_id)
