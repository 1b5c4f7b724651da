"""``lavin app``: in-context prediction in the browser (a Gradio page, the optional ``app`` extra).

- ``request``: ``AppRequest`` (what one click of Predict asks for) and ``AppResult`` (what comes back).
- ``uploads``: the user's files (example pairs in the template layout, the query) as pixels, and
  error messages that name the user's file names instead of the server's temporary paths.
- ``queries``: queries to pick: fresh scenes from a task's generator (with their ground truth)
  and scikit-image's sample photos when it is installed.
- ``templates``: the template folders under ``--templates DIR`` offered in a list.
- ``predictor``: ``Predictor``, the one model of the server and the prediction behind the button.
- ``page``: the Gradio page (the only module here that imports Gradio, with ``server``).
- ``server``: the queue (one prediction at a time) and the local web server.

Everything but ``page`` and ``server`` works without Gradio, so the prediction path is tested
without a browser.
"""
