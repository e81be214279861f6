"""``lcm serve``: the summarize task behind a web page (Gradio), offline.

``service`` keeps one summariser in memory and runs requests in turn through the same
``Summarizer`` as ``lcm run``; ``progress`` says where a request stands; ``render`` and
``projection`` draw the result; ``page`` lays out the page and serves it.
"""
