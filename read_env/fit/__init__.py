"""World fitting: a world fitted to recorded episodes (:mod:`read_env.episodes`).

* :mod:`read_env.fit.calibrated`: a calibrated world of ``ReAD-Surrogate-v0/v1/v2`` (least squares, numpy);
* :mod:`read_env.fit.fitted`: a recency or ensemble world of ``ReAD-Fitted`` (Adam, torch);
* :mod:`read_env.fit.validate`: fitted worlds validated on held-out schedules, by error and by rank.
"""
