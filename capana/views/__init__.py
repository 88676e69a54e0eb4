"""Renderings of a :class:`capana.model.Report`; each is a pure function of the report."""
